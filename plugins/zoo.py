"""Built-in plugin: the reference model zoo's datasets and custom layers.

Registers the zoo's named datasets (so ``diagnose models/artifacts/cnn.h5`` finds its data through
the model's sidecar) and the Transformer's custom layers (so zoo models load without ``--trust``).
Custom layers are registered by import path: nothing imports keras until a model is loaded.
"""

from __future__ import annotations

import diagnostics

#: Custom layer classes of the zoo, as ``diagnostics_zoo.layers`` defines them.
ZOO_LAYERS = ("PositionalEmbedding", "TransformerEncoder")
PACKAGE = "diagnostics_zoo"


@diagnostics.hookimpl
def register_custom_objects(register):
    for name in ZOO_LAYERS:
        target = f"{PACKAGE}.layers:{name}"
        register(f"{PACKAGE}>{name}", target)
        register(name, target)


@diagnostics.hookimpl
def register_datasets(register):
    from diagnostics_zoo import DATASETS

    for name, loader in sorted(DATASETS.items()):
        register(name, loader)

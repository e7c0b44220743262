"""Built-in plugin: load well-known Keras 2 (``tf.keras``) ``.h5`` files under Keras 3, safely.

Keras 2 wrote keys into some layer configs that Keras 3's constructors reject, so a plain Keras 2
``LSTM(32)`` or any MobileNet fine-tune fails to load with ``Unrecognized keyword arguments``:

- ``time_major`` on ``LSTM``, ``GRU`` and ``SimpleRNN`` (always False in practice; True is refused
  with a message, as Keras 3 cannot run time-major layers);
- ``groups`` on ``DepthwiseConv2D`` (inherited from Conv2D's config, always 1).

This plugin registers, through ``register_custom_objects``, Keras 3 subclasses under the Keras
names that drop exactly these keys in ``from_config`` (see ``diagnostics_plugins.keras2_layers``).
They are installed code, so such files load without ``--trust``; nothing is read from the file but
the config. What cannot be converted this way (``TFOpLambda`` layers, SavedModel directories) is
refused by the host with a message that says how to convert it (``diagnostics._compat``).
"""

from __future__ import annotations

import diagnostics

#: Keras layer names whose Keras 2 configs need a key dropped.
COMPAT_LAYERS = ("LSTM", "GRU", "SimpleRNN", "DepthwiseConv2D")
MODULE = "diagnostics_plugins.keras2_layers"


@diagnostics.hookimpl
def register_custom_objects(register):
    for name in COMPAT_LAYERS:
        register(name, f"{MODULE}:{name}")

"""The hook specifications of the diagnostics plugin API.

Hooks only *register* things; the host keeps the lists, de-duplicates names and calls each
analyzer itself (as datasette and simonw/llm do), so it can select, order, time and isolate them.

A plugin is a module (or object) with functions marked ``@diagnostics.hookimpl`` named like the
specs below. It may declare ``DIAGNOSTICS_API_VERSION = 1``; a plugin declaring a major version
other than :data:`HOOK_API_VERSION` is refused with a message saying which version it needs.
"""

from __future__ import annotations

import pluggy

PROJECT = "diagnostics"
#: The major version of this hook API. Bumped only when a hook's signature or contract changes.
HOOK_API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_analyzers(register):
    """Register analyzer classes.

    Called once, when plugins are first loaded. Call ``register(AnalyzerClass)`` for each
    :class:`diagnostics.Analyzer` subclass the plugin provides. A name already registered by
    another plugin is refused and reported with both plugins' names.

    Returns nothing.
    """


@hookspec
def register_custom_objects(register):
    """Register custom Keras classes or functions that models may contain.

    Called once, when plugins are first loaded. Call ``register(name, obj)`` with the name under
    which Keras serialised the object (its ``registered_name``, e.g. ``"zoo>PositionalEmbedding"``,
    or the bare class name). Objects registered here load *without* ``--trust``: registering a
    class is a statement that its code is installed and trusted, not read from the model file.

    Returns nothing.
    """


@hookspec
def register_datasets(register):
    """Register named datasets that a model's sidecar metadata can refer to.

    Called once, when plugins are first loaded. Call ``register(name, loader)`` where
    ``loader(seed: int) -> dict[str, numpy.ndarray]`` returns at least ``x_val``/``y_val`` (or
    ``x``/``y``) and optionally ``x_train``/``y_train`` and extras such as ``mask_val``. The loader
    must be deterministic in ``seed`` and must not download anything.

    Returns nothing.
    """

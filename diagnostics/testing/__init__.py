"""A testing kit for analyzer authors: tiny models, a plugin fixture, and the analyzer contract.

::

    from diagnostics.testing import assert_analyzer_contract, tiny_case, installed_plugin

    def test_my_analyzer_keeps_the_contract():
        assert_analyzer_contract(MyAnalyzer, options={"samples": 16})

- :func:`assert_analyzer_contract` runs an analyzer on a tiny seeded model of every kind it
  declares and checks what the host relies on (see :mod:`diagnostics.testing.contract`).
- :func:`tiny_case` / :func:`tiny_model` / :func:`tiny_data`: trained-in-a-second Keras models of
  each kind (image, sequence, token, tabular, generator) with data, history and metadata;
  :func:`multi_input_case` (inputs ``image`` and ``stats``) and :func:`multi_output_case` (outputs
  ``label`` and ``score``) for analyzers that must handle several inputs or outputs.
- :func:`installed_plugin` (a context manager) and the ``register_plugin`` pytest fixture install a
  plugin through a real entry point for one test and remove it afterwards.

Importing this package does not import keras; the model builders do, under the process's backend.
"""

from .contract import (ContractError, ContractReport, assert_analyzer_contract, context_for, declared_data,
                       run_analyzer)
from .fixtures import installed_plugin
from .models import KINDS, TinyCase, multi_input_case, multi_output_case, tiny_case, tiny_data, tiny_model

__all__ = [
    "KINDS", "ContractError", "ContractReport", "TinyCase", "assert_analyzer_contract", "context_for", "declared_data",
    "installed_plugin", "multi_input_case", "multi_output_case", "run_analyzer", "tiny_case", "tiny_data", "tiny_model",
]

"""DSPy adapter of llmrouter-core: routed language models and a model-assignment optimizer.

* :class:`RoutedLM`: a ``dspy.LM`` whose calls are routed by a trained router (through DSPy's
  LiteLLM path and the in-process ``llmrouter/<key>`` provider). Works with
  ``dspy.configure(lm=...)``, ``dspy.context(lm=...)`` and ``predictor.set_lm(...)``.
* :class:`ModelAssignmentOptimizer`: a teleprompter choosing, per predictor, a fixed pool
  model or the router at a willingness-to-pay setting, to maximise ``metric - lambda x cost``.
* :func:`cost_meter`: the routed calls (answering model, cost) made inside a block.
* :func:`load_program`: load a saved program whose predictors use RoutedLMs.
* :mod:`dspy_llmrouter.recorded`: run programs offline on RouterBench's recorded answers.

Example:
    >>> import dspy                                                          # doctest: +SKIP
    >>> from dspy_llmrouter import RoutedLM                                  # doctest: +SKIP
    >>> dspy.configure(lm=RoutedLM("runs/my-router", cost_weight=50.0))      # doctest: +SKIP
"""

from __future__ import annotations

import os as _os

# DSPy imports LiteLLM on first use; LiteLLM fetches its price table from the network at
# import unless told to use its bundled copy (the core does the same in import_litellm()).
_os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from dspy_llmrouter._lm import CostMeter, RoutedCall, RoutedLM, cost_meter
from dspy_llmrouter._optimizer import (
    AssignmentScore,
    ModelAssignmentOptimizer,
    RoutingPolicy,
    assignment_of,
    load_program,
)

__all__ = [
    "AssignmentScore",
    "CostMeter",
    "ModelAssignmentOptimizer",
    "RoutedCall",
    "RoutedLM",
    "RoutingPolicy",
    "assignment_of",
    "cost_meter",
    "load_program",
]

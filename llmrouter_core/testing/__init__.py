"""Tools for testing routers and code that uses them (public, for plugin authors and users).

* :func:`check_router` / :func:`router_checks`: the conformance suite every router passes,
  run on an unfitted router of yours (as scikit-learn's ``check_estimator``);
* :func:`make_routing_data`: small synthetic routing data with real structure;
* :class:`ScriptedProvider`: LiteLLM models that answer (or fail, or call tools) as scripted
  and record their calls;
* :func:`dummy_router`: a fitted router with fixed predictions, for tests of code that routes.
"""

from __future__ import annotations

from llmrouter_core.testing.checks import CheckSkipped, check_router, router_checks
from llmrouter_core.testing.data import make_routing_data
from llmrouter_core.testing.dummy import dummy_router
from llmrouter_core.testing.provider import (
    Responder,
    ScriptedCall,
    ScriptedProvider,
    ScriptedReply,
)

__all__ = [
    "CheckSkipped",
    "Responder",
    "ScriptedCall",
    "ScriptedProvider",
    "ScriptedReply",
    "check_router",
    "dummy_router",
    "make_routing_data",
    "router_checks",
]

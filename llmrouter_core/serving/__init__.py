"""An OpenAI-compatible server that routes: ``llmrouter serve`` (the ``serve`` extra).

* :func:`create_app` / :class:`ServeConfig`: the ASGI application;
* :func:`serve` / :func:`make_server`: run it with uvicorn, with a graceful drain;
* :class:`KeyRing`, :class:`ApiKey`: hashed bearer keys with budgets;
* :class:`LocalState`, :class:`RedisState`: shared state (budgets, rate limits, feedback) in
  the process or in Redis for several replicas.

See ``docs/serving.md``.
"""

from __future__ import annotations

from llmrouter_core.serving.app import ServeConfig, Service, create_app
from llmrouter_core.serving.keys import ApiKey, KeyFileError, KeyRing, append_key, hash_key
from llmrouter_core.serving.server import make_server, serve
from llmrouter_core.serving.state import LocalState, RedisBudget, RedisState

__all__ = [
    "ApiKey",
    "KeyFileError",
    "KeyRing",
    "LocalState",
    "RedisBudget",
    "RedisState",
    "ServeConfig",
    "Service",
    "append_key",
    "create_app",
    "hash_key",
    "make_server",
    "serve",
]

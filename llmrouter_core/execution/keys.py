"""API keys: parsing ``API_KEYS``, per-service round robin, and redaction.

``API_KEYS`` accepts the formats LLMRouter users already have:

* a JSON object of service -> key or key list: ``{"openai": ["k1", "k2"], "NVIDIA": "k3"}``;
* a JSON list: ``["k1", "k2"]`` (shared by every service);
* comma-separated keys: ``k1,k2``;
* one key: ``k1``.

A :class:`KeyPool` hands keys out in round robin per service, safely from many threads and
from many asyncio tasks (the critical section never awaits). Keys are never part of a repr,
a log line or an error message: :meth:`KeyPool.redact` (and :func:`redact_secrets`) replace
them, and the common key shapes, with ``***``.

Example:
    >>> pool = KeyPool.from_string('{"openai": ["k-one-1", "k-two-2"]}')
    >>> [pool.next_key("openai") for _ in range(3)]
    ['k-one-1', 'k-two-2', 'k-one-1']
    >>> pool
    KeyPool(services={'openai': 2})
    >>> KeyPool({"qwhfkzmxlpte": ["k-one-1"]})
    KeyPool(services={'<1 other>': 1})
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from llmrouter_core.errors import LLMRouterError
from llmrouter_core.secrets import redact, register_secret

__all__ = [
    "ANY_SERVICE",
    "API_KEYS_ENV",
    "KeyPool",
    "KeysError",
    "parse_api_keys",
    "redact_secrets",
]

#: Environment variable read by :meth:`KeyPool.from_env`.
API_KEYS_ENV = "API_KEYS"
#: Service name under which keys that apply to every service are kept.
ANY_SERVICE = "*"

# Service names a repr may show: the usual ones here, plus every provider LiteLLM lists
# when it is loaded. Anything else may be a key put in the service position by mistake.
_KNOWN_SERVICES = frozenset(
    {
        ANY_SERVICE,
        "openai",
        "azure",
        "anthropic",
        "google",
        "gemini",
        "vertex_ai",
        "nvidia",
        "nvidia_nim",
        "mistral",
        "groq",
        "deepseek",
        "together_ai",
        "fireworks_ai",
        "openrouter",
        "cohere",
        "bedrock",
        "huggingface",
        "replicate",
        "xai",
        "perplexity",
    }
)


def _known_service(name: str) -> bool:
    if name in _KNOWN_SERVICES:
        return True
    litellm = sys.modules.get("litellm")
    providers = getattr(litellm, "provider_list", ()) if litellm is not None else ()
    return any(name == str(getattr(p, "value", p)) for p in providers)


class KeysError(LLMRouterError, ValueError):
    """``API_KEYS`` (or a key list) is malformed. The message never contains a key."""


def _clean(keys: Iterable[Any], where: str) -> list[str]:
    out: list[str] = []
    for key in keys:
        if not isinstance(key, str):
            raise KeysError(f"{where}: every key must be a string, got {type(key).__name__}")
        key = key.strip()
        if key:
            out.append(key)
    return out


def parse_api_keys(raw: str) -> dict[str, list[str]]:
    """Parse an ``API_KEYS`` value into ``{service: [keys]}``.

    Keys that apply to every service are stored under :data:`ANY_SERVICE`. Service names are
    compared case-insensitively (stored lower-case).

    Raises:
        KeysError: The value is malformed (the message describes the shape, never the keys).
    """
    text = raw.strip()
    if not text:
        return {}
    if text[0] in '[{"':
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise KeysError(
                f"{API_KEYS_ENV} looks like JSON but does not parse (expected an object of "
                "service -> key list, or a list of keys)"
            ) from None
        if isinstance(parsed, str):
            keys = _clean([parsed], API_KEYS_ENV)
            return {ANY_SERVICE: keys} if keys else {}
        if isinstance(parsed, list):
            keys = _clean(parsed, API_KEYS_ENV)
            return {ANY_SERVICE: keys} if keys else {}
        if isinstance(parsed, dict):
            out: dict[str, list[str]] = {}
            # Errors name entries by position: a misplaced key could sit in a service name.
            for pos, (service, value) in enumerate(parsed.items(), 1):
                values = [value] if isinstance(value, str) else value
                if not isinstance(values, list):
                    raise KeysError(
                        f"{API_KEYS_ENV}: entry {pos} must map a service to a key or a list of keys"
                    )
                keys = _clean(values, f"{API_KEYS_ENV} entry {pos}")
                if keys:
                    out.setdefault(str(service).strip().lower() or ANY_SERVICE, []).extend(keys)
            return out
        raise KeysError(
            f"{API_KEYS_ENV} must be a JSON object or list, not {type(parsed).__name__}"
        )
    keys = _clean(text.split(","), API_KEYS_ENV)
    return {ANY_SERVICE: keys} if keys else {}


def redact_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every given secret, every registered secret (see
    :func:`llmrouter_core.secrets.redact`) and every common key shape replaced by ``***``."""
    return redact(text, secrets)


class KeyPool:
    """Round-robin API keys per service; thread-safe and asyncio-safe.

    Args:
        keys: ``{service: [keys]}``; keys under :data:`ANY_SERVICE` serve every service that
            has none of its own.

    Example:
        >>> pool = KeyPool({"*": ["key-aaaa", "key-bbbb"]})
        >>> pool.next_key("anything"), pool.next_key("anything")
        ('key-aaaa', 'key-bbbb')
    """

    def __init__(self, keys: Mapping[str, Iterable[str]] | None = None) -> None:
        self._keys: dict[str, tuple[str, ...]] = {}
        for pos, (service, values) in enumerate((keys or {}).items(), 1):
            cleaned = tuple(_clean(values, f"key entry {pos}"))
            if cleaned:
                name = str(service).strip().lower() or ANY_SERVICE
                self._keys[name] = self._keys.get(name, ()) + cleaned
        self._counters: dict[str, int] = dict.fromkeys(self._keys, 0)
        self._lock = threading.Lock()
        self._secrets = frozenset(k for ks in self._keys.values() for k in ks)
        for key in self._secrets:
            register_secret(key)

    @classmethod
    def from_string(cls, raw: str) -> KeyPool:
        """A pool from an ``API_KEYS``-formatted string."""
        return cls(parse_api_keys(raw))

    @classmethod
    def from_env(cls, name: str = API_KEYS_ENV) -> KeyPool:
        """A pool from the environment variable ``name`` (empty if unset)."""
        return cls(parse_api_keys(os.environ.get(name, "")))

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        shown: dict[str, int] = {}
        others = [0, 0]  # services, keys
        for service, keys in self._keys.items():
            if _known_service(service):
                shown[service] = len(keys)
            else:
                others[0] += 1
                others[1] += len(keys)
        if others[0]:
            shown[f"<{others[0]} other{'s' if others[0] > 1 else ''}>"] = others[1]
        return f"KeyPool(services={shown})"

    __str__ = __repr__

    @property
    def services(self) -> tuple[str, ...]:
        """Services with keys (:data:`ANY_SERVICE` for shared keys)."""
        return tuple(self._keys)

    def has_service(self, *services: str | None) -> bool:
        """Whether :meth:`next_key` would return a key for ``services``."""
        return self._resolve(services) is not None

    def _resolve(self, services: tuple[str | None, ...]) -> str | None:
        for service in services:
            name = (service or "").strip().lower()
            if name and name in self._keys:
                return name
        return ANY_SERVICE if ANY_SERVICE in self._keys else None

    def next_key(self, *services: str | None) -> str | None:
        """The next key, in round robin, of the first of ``services`` (names or aliases of one
        service) that has keys, else of the shared keys; ``None`` if there are none."""
        name = self._resolve(services)
        if name is None:
            return None
        keys = self._keys[name]
        # A plain lock suits asyncio too: the section is a few bytecodes and never awaits.
        with self._lock:
            i = self._counters[name]
            self._counters[name] = (i + 1) % len(keys)
        return keys[i]

    def redact(self, text: str) -> str:
        """``text`` with this pool's keys (and common key shapes) replaced by ``***``."""
        return redact_secrets(text, self._secrets)

    @property
    def secrets(self) -> frozenset[str]:
        """The keys themselves, for redaction by callers (never log this)."""
        return self._secrets

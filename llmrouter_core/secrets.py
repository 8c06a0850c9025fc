"""Secrets and endpoints in configuration: one rule to find them, scrub them and ignore them.

A saved router, a pool file or a router's hyperparameters are shared like model files, so

* **saving** drops every field that holds a credential (:func:`scrub_secrets`): fields whose
  *name* says so (``api_key``, ``token``, ``Authorization``, ``password``, ...), values whose
  *shape* says so (``sk-...``, ``Bearer ...``), and the password of a URL
  (``https://user:pw@host``);
* **loading** ignores every field that decides *where* a request goes or *which secret* it
  carries (:func:`strip_endpoints`: ``api_base``, ``base_url``, ``api_key_env``, headers, and
  the credentials above) unless the caller trusts the file: a crafted file must not be able
  to send queries, or a key read from the environment, to an endpoint of its choosing.

Both return the cleaned value and the dotted paths of what they removed, so the caller can
say it once.

Example:
    >>> clean, dropped = scrub_secrets({"name": "m", "extra": {"api_key": "sk-abcdefghijkl"}})
    >>> clean, dropped
    ({'name': 'm', 'extra': {}}, ['extra.api_key'])
    >>> strip_endpoints({"name": "m", "api_base": "http://x", "api_key_env": "AWS_SECRET"})
    ({'name': 'm'}, ['api_base', 'api_key_env'])
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ENDPOINT_FIELDS",
    "SECRET_PATTERNS",
    "is_endpoint_name",
    "is_secret_name",
    "looks_like_secret",
    "scrub_secrets",
    "strip_endpoints",
    "strip_url_password",
]

# Shapes of common provider keys and auth headers, recognised wherever they appear.
SECRET_PATTERNS = (
    re.compile(r"\b(sk|pk|rk|ak)-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bnvapi-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"\bgsk_[A-Za-z0-9]{16,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{16,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
    re.compile(
        r"(?i)((?:api[_-]?key|x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"
    ),
)

# Field names that hold a credential. "max_tokens" and friends count tokens, not secrets.
_SECRET_NAME = re.compile(
    r"(?i)(api[_-]?key|secret|password|passwd|credential|authorization|\bauth\b|bearer|cookie"
    r"|access[_-]?key|private[_-]?key|session[_-]?token|(^|[_-])token$|^token|^key$|_key$)"
)
_NOT_SECRET_NAME = re.compile(r"(?i)(^|_)(max|min|num|n)_?tokens?$|_env$|tokens$")

#: Fields that decide where a call goes or which secret it sends; ignored in untrusted files.
ENDPOINT_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key_env",
        "extra_headers",
        "headers",
        "default_headers",
        "azure_ad_token_provider",
        "aws_role_name",
        "aws_profile_name",
        "vertex_credentials",
        "vertex_project",
        "proxy",
        "proxies",
        "http_client",
    }
)


def is_secret_name(name: str) -> bool:
    """Whether a field called ``name`` holds a credential.

    Example:
        >>> [is_secret_name(n) for n in ("api_key", "Authorization", "max_tokens", "seed")]
        [True, True, False, False]
    """
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET_NAME.search(name)


def is_endpoint_name(name: str) -> bool:
    """Whether a field called ``name`` says where a call goes or which secret it sends: one of
    :data:`ENDPOINT_FIELDS`, or one of them with a prefix (``judge_api_key_env``).

    Example:
        >>> [is_endpoint_name(n) for n in ("api_base", "judge_api_key_env", "temperature")]
        [True, True, False]
    """
    low = name.lower()
    return low in ENDPOINT_FIELDS or any(low.endswith("_" + f) for f in ENDPOINT_FIELDS)


def looks_like_secret(value: str) -> bool:
    """Whether ``value`` has the shape of a provider key or an auth header value."""
    return any(p.search(value) for p in SECRET_PATTERNS)


def strip_url_password(url: str) -> str:
    """``url`` without the password of its user-info part (``https://u:pw@h`` -> ``https://u@h``).

    Example:
        >>> strip_url_password("https://bob:hunter2@api.example.com/v1")
        'https://bob@api.example.com/v1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def _walk(value: Any, path: str, drop: Any, dropped: list[str]) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if drop(str(key), item):
                dropped.append(where)
                continue
            out[key] = _walk(item, where, drop, dropped)
        return out
    if isinstance(value, list | tuple):
        return type(value)(_walk(v, f"{path}[{i}]", drop, dropped) for i, v in enumerate(value))
    if isinstance(value, str):
        if looks_like_secret(value):
            dropped.append(path)
            return ""
        clean = strip_url_password(value) if "@" in value and "://" in value else value
        if clean != value:
            dropped.append(f"{path} (password)")
        return clean
    return value


def scrub_secrets(value: Any) -> tuple[Any, list[str]]:
    """``value`` (nested dicts and lists) without credentials, and the paths removed."""
    dropped: list[str] = []

    def drop(name: str, item: Any) -> bool:
        return is_secret_name(name) and item not in (None, "", {}, [])

    return _walk(value, "", drop, dropped), dropped


def strip_endpoints(value: Any) -> tuple[Any, list[str]]:
    """``value`` without endpoint fields (:data:`ENDPOINT_FIELDS`) and credentials, and the
    paths removed: what a file may not decide unless the caller trusts it."""
    dropped: list[str] = []

    def drop(name: str, item: Any) -> bool:
        if item in (None, "", {}, []):
            return False
        return is_endpoint_name(name) or is_secret_name(name)

    return _walk(value, "", drop, dropped), dropped

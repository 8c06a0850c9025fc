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

At run time, every secret the process may send is also scrubbed **by value**, whatever its
shape: :func:`register_secret` adds a value to a process-wide registry (the executor registers
``API_KEYS``, each model's ``api_key_env`` value, keys passed as call arguments, and the
provider variables LiteLLM reads itself, see :func:`register_env_secrets`), and
:func:`redact` replaces registered values and the common key shapes with ``***`` in any text.
:func:`install_log_redaction` puts a :class:`RedactingFilter` on this package's loggers, so
their records (message, arguments and traceback) carry no registered secret either.

Example:
    >>> clean, dropped = scrub_secrets({"name": "m", "extra": {"api_key": "sk-abcdefghijkl"}})
    >>> clean, dropped
    ({'name': 'm', 'extra': {}}, ['extra.api_key'])
    >>> strip_endpoints({"name": "m", "api_base": "http://x", "api_key_env": "AWS_SECRET"})
    ({'name': 'm'}, ['api_base', 'api_key_env'])
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ENDPOINT_FIELDS",
    "PROVIDER_KEY_ENV",
    "REDACTED",
    "SECRET_PATTERNS",
    "RedactingFilter",
    "install_log_redaction",
    "is_endpoint_name",
    "is_secret_name",
    "looks_like_secret",
    "redact",
    "register_env_secrets",
    "register_secret",
    "scrub_secrets",
    "strip_endpoints",
    "strip_url_password",
]

#: What a redacted secret is replaced with.
REDACTED = "***"

# Shapes of common provider keys and auth headers, recognised wherever they appear. A group
# is a prefix that redaction keeps ("Bearer ***").
SECRET_PATTERNS = (
    re.compile(r"\b(?:sk|pk|rk|ak)-[A-Za-z0-9_\-]{8,}"),
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


# -- redaction by value -----------------------------------------------------------------------

#: Environment variables holding provider credentials that LiteLLM (or the SDKs it drives)
#: reads by itself. Variables whose *name* says they hold a secret (``*_API_KEY``,
#: ``*_TOKEN``, ``*SECRET*``, ...) are registered too, and so is ``<PROVIDER>_API_KEY`` for
#: every provider LiteLLM lists; this explicit list catches the rest.
PROVIDER_KEY_ENV = (
    "API_KEYS",
    "OPENAI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_API_KEY",
    "AZURE_AD_TOKEN",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "PALM_API_KEY",
    "VERTEXAI_CREDENTIALS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "COHERE_API_KEY",
    "CO_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
    "TOGETHERAI_API_KEY",
    "TOGETHER_API_KEY",
    "FIREWORKS_API_KEY",
    "FIREWORKS_AI_API_KEY",
    "OPENROUTER_API_KEY",
    "OPENROUTER_KEY",
    "OR_API_KEY",
    "PERPLEXITYAI_API_KEY",
    "PERPLEXITY_API_KEY",
    "NVIDIA_NIM_API_KEY",
    "NVIDIA_API_KEY",
    "HUGGINGFACE_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "REPLICATE_API_KEY",
    "REPLICATE_API_TOKEN",
    "CLOUDFLARE_API_KEY",
    "DATABRICKS_TOKEN",
    "DATABRICKS_API_KEY",
    "WATSONX_APIKEY",
    "WATSONX_API_KEY",
    "WATSONX_TOKEN",
    "AI21_API_KEY",
    "CEREBRAS_API_KEY",
    "SAMBANOVA_API_KEY",
    "DEEPINFRA_API_KEY",
    "ANYSCALE_API_KEY",
    "VOYAGE_API_KEY",
    "JINA_AI_API_KEY",
    "BASETEN_KEY",
    "PREDIBASE_API_KEY",
    "FRIENDLIAI_API_KEY",
    "NLP_CLOUD_API_KEY",
    "ALEPH_ALPHA_API_KEY",
    "CLARIFAI_API_KEY",
    "DASHSCOPE_API_KEY",
    "MOONSHOT_API_KEY",
    "LITELLM_API_KEY",
    "LITELLM_MASTER_KEY",
)

#: Values shorter than this are not registered: no real credential is this short, and
#: scrubbing a short common string ("true", "8080") would mangle every message.
MIN_SECRET_CHARS = 8

_registry: set[str] = set()
_registry_lock = threading.Lock()
# One compiled alternation of the registered values (longest first), rebuilt on change.
_registry_re: re.Pattern[str] | None = None
_env_seen: dict[str, str] = {}


def register_secret(value: object) -> None:
    """Add ``value`` to the secrets :func:`redact` scrubs by value (whatever its shape).

    Non-strings and values shorter than :data:`MIN_SECRET_CHARS` characters are ignored. An
    ``Authorization``-style value (``"Bearer abc..."``) registers its token too.

    Example:
        >>> register_secret("qwhfkzmxlpte")
        >>> redact("the key qwhfkzmxlpte was refused")
        'the key *** was refused'
    """
    if not isinstance(value, str):
        return
    value = value.strip()
    candidates = {value}
    scheme, _, token = value.partition(" ")
    if token and scheme.isalpha():  # "Bearer <token>", "Basic <token>"
        candidates.add(token.strip())
    fresh = {c for c in candidates if len(c) >= MIN_SECRET_CHARS and c not in _registry}
    if not fresh:
        return
    global _registry_re
    with _registry_lock:
        _registry.update(fresh)
        _registry_re = None


def _registry_pattern() -> re.Pattern[str] | None:
    global _registry_re
    pattern = _registry_re
    if pattern is None and _registry:
        with _registry_lock:
            values = sorted(_registry, key=len, reverse=True)
            pattern = _registry_re = re.compile("|".join(map(re.escape, values)))
    return pattern


def _provider_env_names() -> set[str]:
    """:data:`PROVIDER_KEY_ENV` plus the key variables LiteLLM documents, if it is loaded
    (``<PROVIDER>_API_KEY`` of each provider it lists, its setup wizard's and its log
    scrubber's variable names)."""
    names = set(PROVIDER_KEY_ENV)
    litellm = sys.modules.get("litellm")
    if litellm is None:
        return names
    for provider in getattr(litellm, "provider_list", ()):
        value = str(getattr(provider, "value", provider))
        names.add(re.sub(r"[^A-Z0-9]", "_", value.upper()) + "_API_KEY")
    constants = sys.modules.get("litellm.constants")
    for name in getattr(constants, "SENTRY_DENYLIST", ()) or ():
        if isinstance(name, str) and name.isupper():
            names.add(name)
    return names


_provider_env: tuple[bool, set[str]] | None = None  # (LiteLLM was loaded, the names)


def _key_values(raw: str) -> list[str]:
    """The keys of an ``API_KEYS`` value (JSON object or list, or comma-separated); service
    names are not keys."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw.split(",")
    values = parsed.values() if isinstance(parsed, dict) else [parsed]
    out: list[str] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return [v for v in out if isinstance(v, str)]


def register_env_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Register the values of the environment variables that hold credentials: those of
    :data:`PROVIDER_KEY_ENV` and LiteLLM's provider list, and any whose name says it holds a
    secret (``*_API_KEY``, ``*_TOKEN``, ``*SECRET*``, ...). Cheap to call again: only new or
    changed values are looked at.
    """
    global _provider_env
    loaded = "litellm" in sys.modules
    if _provider_env is None or (loaded and not _provider_env[0]):
        _provider_env = (loaded, _provider_env_names())
    names = _provider_env[1]
    env = os.environ if environ is None else environ
    for name, value in list(env.items()):
        if _env_seen.get(name) == value:
            continue
        _env_seen[name] = value
        if name in names or is_secret_name(name):
            register_secret(value)
            if name == "API_KEYS":
                for key in _key_values(value):
                    register_secret(key)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered secret, every value of ``extra``, and every common key
    shape (:data:`SECRET_PATTERNS`) replaced by ``***``.

    Example:
        >>> redact("Incorrect API key provided: sk-abcdefghijklmnop")
        'Incorrect API key provided: ***'
    """
    for secret in sorted({s for s in extra if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    pattern = _registry_pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for shape in SECRET_PATTERNS:
        if shape.groups:
            text = shape.sub(lambda m: (m.group(1) if m.lastindex else "") + REDACTED, text)
        else:
            text = shape.sub(REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs secrets (see :func:`redact`) from a log record's message, arguments and
    traceback before any handler sees it; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        record.msg, record.args = redact(message), ()
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            # Handlers print exc_text; the live exception (whose str may hold a key) is dropped.
            record.exc_text, record.exc_info = redact(text), None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_log_redaction(package: str = "llmrouter_core") -> None:
    """Put :class:`RedactingFilter` on the logger ``package`` and on each of its descendants
    created so far (idempotent).

    A filter on a logger applies to the records *created on that logger*, not to those
    propagating from its children, hence one filter per module logger.
    """
    loggers = [logging.getLogger(package)]
    prefix = package + "."
    for name, item in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith(prefix) and isinstance(item, logging.Logger):
            loggers.append(item)
    for logger in loggers:
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)

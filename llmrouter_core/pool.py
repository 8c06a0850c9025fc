"""Model pools: the models a router may choose from, with prices and capabilities.

A :class:`ModelSpec` describes one model; a :class:`Pool` is an ordered, name-indexed set of
them. Pools load from YAML/JSON (``{"models": [...]}`` or a list), and from LLMRouter's
``default_llm.json`` (a mapping of name -> spec). Prices are USD per 1M tokens; a missing price
is looked up in LiteLLM's bundled price table, offline. Model sizes (billions of parameters)
come from the spec (``params_b``, or LLMRouter's ``size``), else from the model's name
(:func:`parse_params_b`).

Example:
    >>> pool = Pool([ModelSpec("small", input_price=0.1, output_price=0.2),
    ...              ModelSpec("large", input_price=5.0, output_price=15.0)])
    >>> round(pool["large"].estimate_cost(1000, 100), 6)
    0.0065
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from llmrouter_core.errors import DataError, UnknownModelError

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_OUTPUT_TOKENS",
    "ModelSpec",
    "Pool",
    "estimate_tokens",
    "parse_params_b",
]

logger = logging.getLogger(__name__)

#: Token estimate used wherever a tokenizer is not at hand: one token per 4 characters
#: (OpenAI's rule of thumb for English text), at least one token for non-empty text.
CHARS_PER_TOKEN = 4.0
#: Output tokens assumed per answer when a dataset records no output token counts.
DEFAULT_OUTPUT_TOKENS = 256


def estimate_tokens(text: str) -> int:
    """Estimate the token count of ``text`` as ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


# "8x7b" (mixture of experts: experts x size of each), then "70b" / "135m" as a whole token
# (not part of a longer word or version number such as "v1.2b3").
_NUMBER = r"(?<![\w.])(\d+(?:\.\d+)?)"
_MOE_SIZE = re.compile(_NUMBER + r"\s*[x\u00d7]\s*(\d+(?:\.\d+)?)\s*b(?![a-z0-9])", re.I)
_SIZE = re.compile(_NUMBER + r"\s*([bm])(?![a-z0-9])", re.I)


def parse_params_b(text: str | float | int | None) -> float | None:
    """Billions of parameters written in a size field or a model name, or ``None``.

    Understands ``"7B"``, ``"70b"``, ``"135M"`` (millions), ``"1.5B"``, and mixture-of-experts
    names such as ``"8x7b"``, read as experts x size (56 for Mixtral 8x7B: an upper bound, as
    the experts share their attention layers; its true count is 46.7B). The first size in the
    text counts; a number without a unit (``"gpt-4"``) is not a size.

    Example:
        >>> parse_params_b("meta/llama-2-70b-chat"), parse_params_b("mixtral-8x7b-chat")
        (70.0, 56.0)
        >>> parse_params_b("smollm2-135m"), parse_params_b("gpt-4-1106-preview")
        (0.135, None)
    """
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        value = float(text)
        return value if math.isfinite(value) and value > 0 else None
    moe = _MOE_SIZE.search(text)
    if moe is not None:
        return float(moe.group(1)) * float(moe.group(2))
    single = _SIZE.search(text)
    if single is None:
        return None
    value = float(single.group(1))
    if value <= 0:
        return None
    return value / 1000.0 if single.group(2).lower() == "m" else value


@dataclass(frozen=True)
class ModelSpec:
    """One model of a pool.

    Attributes:
        name: Name used in routing data and decisions.
        litellm_model: LiteLLM model id used to call it (default: ``name``).
        input_price: USD per 1M input tokens (``None`` = unknown).
        output_price: USD per 1M output tokens (``None`` = unknown).
        context_window: Maximum input tokens (``None`` = unknown, assumed unlimited).
        supports_tools: Accepts tool / function calling.
        supports_json_schema: Accepts a JSON-schema response format.
        supports_vision: Accepts image inputs.
        description: Free text (used by LLM-based routers).
        api_base: Endpoint override for this model.
        api_key_env: Name of an environment variable holding its key (the key itself is never
            stored in a spec, so it cannot leak into logs or saved routers).
        extra: Additional keyword arguments passed to LiteLLM.
        params_b: Size in billions of parameters (``None`` = unknown; :attr:`size_b` then
            reads it from the name). LLMRouter's ``size`` field (``"7B"``) fills it.
    """

    name: str
    litellm_model: str = ""
    input_price: float | None = None
    output_price: float | None = None
    context_window: int | None = None
    supports_tools: bool = False
    supports_json_schema: bool = False
    supports_vision: bool = False
    description: str = ""
    api_base: str | None = None
    api_key_env: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    params_b: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise DataError("a model spec needs a non-empty 'name'")
        if not self.litellm_model:
            object.__setattr__(self, "litellm_model", self.name)
        for attr in ("input_price", "output_price"):
            value = getattr(self, attr)
            if value is not None:
                value = float(value)
                if not math.isfinite(value) or value < 0:
                    raise DataError(f"model {self.name!r}: {attr} must be a non-negative number")
                object.__setattr__(self, attr, value)
        if self.params_b is not None:
            size = self.params_b
            if isinstance(size, bool) or not isinstance(size, int | float):
                raise DataError(f"model {self.name!r}: params_b must be a number of billions")
            if not math.isfinite(size) or size <= 0:
                raise DataError(f"model {self.name!r}: params_b must be a positive number")
            object.__setattr__(self, "params_b", float(size))

    @property
    def size_b(self) -> float | None:
        """Billions of parameters: :attr:`params_b` if given, else read from the name or the
        LiteLLM id (``"llama-2-70b-chat"`` -> 70, see :func:`parse_params_b`), else ``None``.

        Example:
            >>> ModelSpec("meta/llama-2-70b-chat").size_b, ModelSpec("gpt-4o").size_b
            (70.0, None)
        """
        if self.params_b is not None:
            return self.params_b
        return parse_params_b(self.name) or parse_params_b(self.litellm_model)

    @property
    def has_prices(self) -> bool:
        """Whether both prices are known."""
        return self.input_price is not None and self.output_price is not None

    def estimate_cost(self, input_tokens: float, output_tokens: float) -> float:
        """USD cost of one call with the given token counts (unknown prices count as 0)."""
        return (
            (self.input_price or 0.0) * input_tokens + (self.output_price or 0.0) * output_tokens
        ) / 1e6

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (round-trips through :meth:`from_dict`)."""
        out = asdict(self)
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, name: str | None = None) -> ModelSpec:
        """Build a spec from a dict in this project's format or LLMRouter's.

        LLMRouter's ``default_llm.json`` entries use ``model`` for the API id, ``feature``
        for the description and ``size`` (``"7B"``) for the size; all are understood (``size``
        fills :attr:`params_b` and is also kept in ``extra``).
        """
        if not isinstance(raw, Mapping):
            raise DataError(f"a model spec must be an object, got {type(raw).__name__}")
        data = dict(raw)
        spec_name = data.pop("name", None) or name
        if not spec_name:
            raise DataError(f"model spec without a 'name': {sorted(data)}")
        litellm_model = data.pop("litellm_model", None) or ""
        api_model = data.pop("model", None)
        service = data.pop("service", None)
        if not litellm_model and api_model:
            # LLMRouter pools name NVIDIA-hosted models by their API id.
            prefix = "nvidia_nim/" if str(service or "").upper() == "NVIDIA" else ""
            litellm_model = prefix + str(api_model)
        description = data.pop("description", None) or data.pop("feature", None) or ""
        known = {f for f in cls.__dataclass_fields__ if f not in {"name", "extra"}}
        kwargs = {k: data.pop(k) for k in list(data) if k in known}
        if kwargs.get("params_b") is None and data.get("size") is not None:
            size = parse_params_b(data["size"])
            if size is None:
                logger.warning("model %s: cannot read a size from %r", spec_name, data["size"])
            kwargs["params_b"] = size
        for drop in ("api_key", "key", "api_keys"):
            if data.pop(drop, None) is not None:
                logger.warning("model %s: ignoring an inline API key in the pool file", spec_name)
        extra = dict(data.pop("extra", {}) or {})
        extra.update(data)  # unknown fields are kept, not lost (e.g. LLMRouter's "size")
        return cls(
            name=str(spec_name),
            litellm_model=str(litellm_model),
            description=str(description),
            extra=extra,
            **kwargs,
        )


class Pool(Sequence[ModelSpec]):
    """An ordered set of :class:`ModelSpec`, indexable by position or name.

    Example:
        >>> pool = Pool.from_dict({"models": [{"name": "a", "input_price": 1, "output_price": 2}]})
        >>> pool.names
        ('a',)
    """

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        specs = tuple(models)
        if not specs:
            raise DataError("a pool needs at least one model")
        index: dict[str, int] = {}
        for i, spec in enumerate(specs):
            if spec.name in index:
                raise DataError(f"model {spec.name!r} appears twice in the pool")
            index[spec.name] = i
        self._specs = specs
        self._index = index

    # -- Sequence protocol -------------------------------------------------
    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs)

    def __getitem__(self, key: int | str) -> ModelSpec:  # type: ignore[override]
        if isinstance(key, str):
            try:
                return self._specs[self._index[key]]
            except KeyError:
                raise UnknownModelError(
                    f"unknown model {key!r}; the pool has: {', '.join(self.names)}"
                ) from None
        return self._specs[key]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pool) and self._specs == other._specs

    def __hash__(self) -> int:
        return hash(self.names)

    def __repr__(self) -> str:
        return f"Pool({list(self.names)!r})"

    @property
    def names(self) -> tuple[str, ...]:
        """Model names in pool order."""
        return tuple(s.name for s in self._specs)

    def index(self, name: str) -> int:  # type: ignore[override]
        """Position of model ``name``."""
        if name not in self._index:
            raise UnknownModelError(
                f"unknown model {name!r}; the pool has: {', '.join(self.names)}"
            )
        return self._index[name]

    def subset(self, names: Iterable[str]) -> Pool:
        """A pool of the named models, in the given order."""
        return Pool(self[n] for n in names)

    def replace(self, name: str, **changes: Any) -> Pool:
        """A copy with model ``name`` changed."""
        return Pool(replace(s, **changes) if s.name == name else s for s in self._specs)

    # -- (de)serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"models": [...]}``, the pool-file format."""
        return {"models": [s.to_dict() for s in self._specs]}

    def _rebuilt(self, clean: Any) -> tuple[Pool, list[str]]:
        out, dropped = [], []
        for spec in self._specs:
            raw, removed = clean(spec.to_dict())
            out.append(ModelSpec.from_dict(raw))
            dropped += [f"{spec.name}: {path}" for path in removed]
        return (self, []) if not dropped else (Pool(out), dropped)

    def scrubbed(self) -> tuple[Pool, list[str]]:
        """This pool without credentials in any field (names and values that look like
        credentials, URL passwords; see :func:`~llmrouter_core.secrets.scrub_secrets`), and
        what was removed, as ``"model: field"`` strings."""
        from llmrouter_core.secrets import scrub_secrets

        return self._rebuilt(scrub_secrets)

    def without_endpoints(self) -> tuple[Pool, list[str]]:
        """This pool without endpoint overrides, key variables, headers and credentials
        (see :func:`~llmrouter_core.secrets.strip_endpoints`), and what was removed: the
        models are then called at their providers' own endpoints with the caller's keys."""
        from llmrouter_core.secrets import strip_endpoints

        return self._rebuilt(strip_endpoints)

    @classmethod
    def from_dict(cls, raw: Any) -> Pool:
        """Build a pool from ``{"models": [...]}``, a list of specs, or LLMRouter's mapping."""
        if isinstance(raw, Mapping) and "models" in raw:
            raw = raw["models"]
        if isinstance(raw, Mapping):
            return cls(ModelSpec.from_dict(v, name=str(k)) for k, v in raw.items())
        if isinstance(raw, list):
            return cls(ModelSpec.from_dict(v) for v in raw)
        raise DataError(
            "a pool must be {'models': [...]}, a list of model specs or a name -> spec mapping"
        )

    @classmethod
    def from_file(cls, path: str | Path, *, fill_prices: bool = True) -> Pool:
        """Load a pool from a JSON or YAML file.

        Args:
            path: ``.json``, ``.yaml`` or ``.yml`` file.
            fill_prices: Look missing prices up in LiteLLM's bundled price table.
        """
        p = Path(path)
        if not p.is_file():
            raise DataError(f"pool file not found: {p}")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"pool file {p} is not valid UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
        try:
            if p.suffix.lower() in {".yaml", ".yml"}:
                import yaml

                raw = yaml.safe_load(text)
            else:
                raw = json.loads(text)
        except Exception as exc:
            raise DataError(f"cannot parse pool file {p}: {exc}") from exc
        pool = cls.from_dict(raw)
        return pool.with_litellm_prices() if fill_prices else pool

    def save(self, path: str | Path) -> None:
        """Write the pool as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    # -- prices ------------------------------------------------------------
    def with_litellm_prices(self) -> Pool:
        """Fill missing prices and capabilities from LiteLLM's bundled (offline) price table."""
        if all(s.has_prices for s in self._specs):
            return self
        from llmrouter_core._lazy import import_litellm

        litellm = import_litellm()
        specs = []
        for spec in self._specs:
            if spec.has_prices:
                specs.append(spec)
                continue
            info = _litellm_model_info(litellm, spec.litellm_model)
            if info is None:
                logger.warning("no price known for model %s (%s)", spec.name, spec.litellm_model)
                specs.append(spec)
                continue
            changes: dict[str, Any] = {}
            if spec.input_price is None and info.get("input_cost_per_token") is not None:
                changes["input_price"] = float(info["input_cost_per_token"]) * 1e6
            if spec.output_price is None and info.get("output_cost_per_token") is not None:
                changes["output_price"] = float(info["output_cost_per_token"]) * 1e6
            if spec.context_window is None and info.get("max_input_tokens"):
                changes["context_window"] = int(info["max_input_tokens"])
            specs.append(replace(spec, **changes))
        return Pool(specs)

    @classmethod
    def from_names(cls, names: Iterable[str], *, fill_prices: bool = False) -> Pool:
        """A pool of bare specs named ``names`` (prices optionally from LiteLLM)."""
        pool = cls(ModelSpec(n) for n in names)
        return pool.with_litellm_prices() if fill_prices else pool


def _litellm_model_info(litellm: Any, model: str) -> dict[str, Any] | None:
    cost_map: Mapping[str, Any] = getattr(litellm, "model_cost", {})
    for key in (model, model.split("/", 1)[-1]):
        info = cost_map.get(key)
        if isinstance(info, Mapping):
            return dict(info)
    return None

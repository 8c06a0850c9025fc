"""API keys of ``llmrouter serve``: a file of hashed bearer keys, each with a USD budget.

The file (YAML or JSON) lists one entry per key; only the SHA-256 of a key is stored, so the
file can be read by operators without exposing the keys::

    keys:
      - name: team-a                 # shown in metrics and logs (never the key itself)
        sha256: 9f86d081884c7d65...  # hex SHA-256 of the bearer key
        budget: 5.0                  # USD this key may spend in total (omit: no limit)
        routers: [auto]              # routers it may use (omit: all; pool models need "*")
        rpm: 600                     # requests per minute (omit: no limit)

``llmrouter serve-key`` creates a random key, appends its entry and prints the key once.
Keys are random 32-byte tokens, so a plain SHA-256 is a safe digest for them (there is nothing
to guess); a hand-made key should be as long.

Example:
    >>> ring = KeyRing([ApiKey("team-a", hash_key("sk-demo-0123456789abcdef"), budget=1.0)])
    >>> ring.lookup("sk-demo-0123456789abcdef").name
    'team-a'
    >>> ring.lookup("wrong") is None
    True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmrouter_core.errors import LLMRouterError

__all__ = ["ANY", "ApiKey", "KeyFileError", "KeyRing", "append_key", "hash_key", "new_key"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
#: A key entry's ``routers`` value that also allows plain pool model names (unrouted).
ANY = "*"


class KeyFileError(LLMRouterError, ValueError):
    """The API keys file is missing, unreadable or malformed."""


def hash_key(key: str) -> str:
    """The hex SHA-256 of a bearer key (what the keys file stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A new random bearer key (``sk-llmr-`` and 43 URL-safe characters, 256 bits)."""
    return "sk-llmr-" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    """One bearer key of the keys file.

    Attributes:
        name: Its label (metrics, logs, budgets are kept under it).
        sha256: Hex SHA-256 of the key.
        budget: USD it may spend in total (``None``: no limit).
        routers: Router names it may use (``None``: every router and pool model); ``"*"``
            among them allows plain pool model names too.
        rpm: Requests per minute (``None``: no limit).
    """

    name: str
    sha256: str
    budget: float | None = None
    routers: tuple[str, ...] | None = None
    rpm: int | None = None

    def allows(self, router: str | None) -> bool:
        """Whether this key may use ``router`` (``None``: a plain pool model, unrouted)."""
        if self.routers is None:
            return True
        return (router if router is not None else ANY) in self.routers

    def to_dict(self) -> dict[str, Any]:
        """The entry as written in the keys file."""
        out: dict[str, Any] = {"name": self.name, "sha256": self.sha256}
        if self.budget is not None:
            out["budget"] = self.budget
        if self.routers is not None:
            out["routers"] = list(self.routers)
        if self.rpm is not None:
            out["rpm"] = self.rpm
        return out


class KeyRing:
    """The keys a server accepts, looked up by the hash of the presented key."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_hash: dict[str, ApiKey] = {}
        names: set[str] = set()
        for key in keys:
            if key.sha256 in self._by_hash:
                raise KeyFileError(f"key {key.name!r} has the same hash as another key")
            if key.name in names:
                raise KeyFileError(f"two keys are named {key.name!r}")
            names.add(key.name)
            self._by_hash[key.sha256] = key

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def keys(self) -> list[ApiKey]:
        """Every key, in file order."""
        return list(self._by_hash.values())

    def lookup(self, presented: str) -> ApiKey | None:
        """The key whose hash matches ``presented``, else ``None``."""
        digest = hash_key(presented)
        key = self._by_hash.get(digest)
        # The dict lookup found it by hash; compare in constant time all the same.
        if key is not None and hmac.compare_digest(key.sha256, digest):
            return key
        return None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyRing:
        """Read a keys file (YAML or JSON); every problem is one :class:`KeyFileError`
        naming the file and the entry."""
        return cls(_parse(Path(path)))


def _parse(path: Path) -> list[ApiKey]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(f"cannot read the keys file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not valid UTF-8") from None
    try:
        doc = yaml.safe_load(text) if text.strip() else {"keys": []}
    except yaml.YAMLError as exc:
        raise KeyFileError(f"{path}: not valid YAML or JSON ({type(exc).__name__})") from None
    rows = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise KeyFileError(f"{path}: expected a mapping with a 'keys' list")
    return [_entry(row, f"{path}: key {i + 1}") for i, row in enumerate(rows)]


def _entry(row: Any, where: str) -> ApiKey:
    if not isinstance(row, dict):
        raise KeyFileError(f"{where}: expected a mapping with name and sha256")
    unknown = sorted(set(row) - {"name", "sha256", "budget", "routers", "rpm"})
    if unknown:
        raise KeyFileError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}")
    name, digest = row.get("name"), row.get("sha256")
    if not isinstance(name, str) or not _NAME.match(name):
        raise KeyFileError(f"{where}: 'name' must be 1-64 letters, digits or _.@-")
    if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
        raise KeyFileError(
            f"{where} ({name}): 'sha256' must be the 64-hex-digit SHA-256 of the key (store "
            "hashes, never keys: llmrouter serve-key writes them)"
        )
    budget = row.get("budget")
    if budget is not None and (
        isinstance(budget, bool)
        or not isinstance(budget, int | float)
        or math.isnan(budget)
        or budget < 0
    ):
        raise KeyFileError(f"{where} ({name}): 'budget' must be a number of USD >= 0")
    routers = row.get("routers")
    if routers is not None and (
        not isinstance(routers, list) or not all(isinstance(r, str) and r for r in routers)
    ):
        raise KeyFileError(f"{where} ({name}): 'routers' must be a list of router names")
    rpm = row.get("rpm")
    if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1):
        raise KeyFileError(f"{where} ({name}): 'rpm' must be a whole number >= 1")
    return ApiKey(
        name=name,
        sha256=digest.lower(),
        budget=None if budget is None else float(budget),
        routers=None if routers is None else tuple(routers),
        rpm=rpm,
    )


def append_key(
    path: str | os.PathLike[str],
    name: str,
    *,
    budget: float | None = None,
    routers: Sequence[str] | None = None,
    rpm: int | None = None,
) -> str:
    """Create a key, append its hashed entry to the keys file at ``path`` (created if
    missing) and return the key (the only time it is ever shown)."""
    p = Path(path)
    existing = _parse(p) if p.exists() else []
    key = new_key()
    entry = _entry(
        {
            k: v
            for k, v in {
                "name": name,
                "sha256": hash_key(key),
                "budget": budget,
                "routers": None if routers is None else list(routers),
                "rpm": rpm,
            }.items()
            if v is not None
        },
        f"{p}: new key",
    )
    KeyRing([*existing, entry])  # refuses a duplicate name
    doc = {"keys": [k.to_dict() for k in [*existing, entry]]}
    text = json.dumps(doc, indent=2) if p.suffix.lower() == ".json" else yaml.safe_dump(doc)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(p)
    return key

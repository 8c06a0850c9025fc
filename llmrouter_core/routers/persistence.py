"""Saving and loading trained routers as plain files.

A saved router is a directory with ``router.json`` (format version, router class as a registry
name, hyperparameters, pool, calibration and JSON state) and ``arrays.npz`` (numeric state),
read back with ``allow_pickle=False``: loading never unpickles and never imports a class that
is not registered.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from llmrouter_core.errors import PersistenceError, UnknownRouterError
from llmrouter_core.pool import Pool
from llmrouter_core.routers.base import Router
from llmrouter_core.routers.costs import CostModel

__all__ = ["FORMAT", "FORMAT_VERSION", "load_router", "save_router"]

FORMAT = "llmrouter-core/router"
FORMAT_VERSION = 1
_COST_PREFIX = "__cost__/"


def _json_safe(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v, where) for k, v in value.items()}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return _json_safe(value.item(), where)
    raise PersistenceError(
        f"cannot save {where}: value of type {type(value).__name__} is not JSON-serialisable"
    )


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def save_router(router: Router, path: str | os.PathLike[str]) -> Path:
    """Write ``router`` to directory ``path`` (created if needed; existing files replaced)."""
    from llmrouter_core import __version__
    from llmrouter_core.routers.registry import registered_name

    router._check_fitted()
    name = registered_name(type(router))
    if name is None:
        raise PersistenceError(
            f"{type(router).__name__} is not registered; register it with "
            "llmrouter_core.register_router(name, cls) before saving"
        )
    meta, arrays = router._get_state()
    for key in arrays:
        if key.startswith(_COST_PREFIX):
            raise PersistenceError(f"array name {key!r} is reserved")
    all_arrays = dict(arrays)
    for key, arr in router.cost_model_.get_state().items():
        all_arrays[_COST_PREFIX + key] = arr
    for key, arr in all_arrays.items():
        if np.asarray(arr).dtype == object:
            raise PersistenceError(f"array {key!r} has dtype object; only numeric arrays are saved")
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "router": name,
        "params": _json_safe(router.get_params(), "hyperparameters"),
        "models": list(router.models_),
        "pool": router.pool_.to_dict(),
        "cost_model": {"per_query": router.cost_model_.per_query},
        "calibration": _json_safe(router.calibration_, "calibration"),
        "n_train": int(getattr(router, "n_train_", 0)),
        "state": _json_safe(meta, "router state"),
    }
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    # Write to temporary files, then rename: a crash never leaves a half-written router.
    with tempfile.NamedTemporaryFile("wb", dir=out, suffix=".npz", delete=False) as fh:
        np.savez_compressed(fh, **{k: np.asarray(v) for k, v in all_arrays.items()})  # type: ignore[arg-type]
        tmp_npz = fh.name
    with tempfile.NamedTemporaryFile(
        "w", dir=out, suffix=".json", delete=False, encoding="utf-8"
    ) as fh:
        json.dump(doc, fh, indent=2)
        tmp_json = fh.name
    for tmp, final in ((tmp_npz, "arrays.npz"), (tmp_json, "router.json")):
        os.chmod(tmp, 0o644)  # tempfile creates 0600; a saved router is an ordinary file
        os.replace(tmp, out / final)
    return out


def load_router(path: str | os.PathLike[str]) -> Router:
    """Load a router saved by :meth:`Router.save`.

    Example:
        >>> router = load_router("runs/default")  # doctest: +SKIP
        >>> router.route("What is 2 + 2?").model  # doctest: +SKIP
        'mistralai/mistral-7b-chat'
    """
    from llmrouter_core.routers.registry import get_router_class

    root = Path(path)
    meta_path = root / "router.json"
    arrays_path = root / "arrays.npz"
    if not root.is_dir():
        raise PersistenceError(f"router directory not found: {root}")
    if not meta_path.is_file() or not arrays_path.is_file():
        raise PersistenceError(f"{root} is not a saved router (router.json / arrays.npz missing)")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PersistenceError(f"cannot read {meta_path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PersistenceError(f"{meta_path} is not a llmrouter-core router file")
    if doc.get("format_version") != FORMAT_VERSION:
        raise PersistenceError(
            f"{meta_path} has format version {doc.get('format_version')}; "
            f"this library reads version {FORMAT_VERSION}"
        )
    try:
        cls = get_router_class(str(doc["router"]))
    except UnknownRouterError as exc:
        raise PersistenceError(f"{meta_path}: {exc}") from exc
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise PersistenceError(f"cannot read {arrays_path}: {exc}") from exc
    try:
        router: Router = cls(**_from_json(doc["params"]))
        router.models_ = list(doc["models"])
        router.pool_ = Pool.from_dict(doc["pool"])
        cost_arrays = {
            k[len(_COST_PREFIX) :]: v for k, v in arrays.items() if k.startswith(_COST_PREFIX)
        }
        router.cost_model_ = CostModel.from_state(
            cost_arrays, per_query=bool(doc["cost_model"]["per_query"])
        )
        router.calibration_ = _from_json(doc["calibration"])
        router.n_train_ = int(doc.get("n_train", 0))
        own = {k: v for k, v in arrays.items() if not k.startswith(_COST_PREFIX)}
        router._set_state(_from_json(doc["state"]), own)
    except (KeyError, TypeError, ValueError) as exc:
        raise PersistenceError(f"{root}: incomplete or corrupt router files ({exc})") from exc
    return router

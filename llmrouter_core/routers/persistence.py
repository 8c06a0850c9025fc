"""Saving and loading trained routers as plain files.

A saved router is a directory with ``router.json`` (format version, router class as a registry
name, hyperparameters, pool, calibration and JSON state) and ``arrays.npz`` (numeric state).

A router directory is untrusted input, like a downloaded model file:

* loading reads arrays with ``allow_pickle=False`` (never unpickles) and resolves the router
  name through :func:`~llmrouter_core.routers.registry.registered_router_class`, which refuses
  any name that is not registered *before* importing anything;
* endpoints and secrets are the caller's decision, not the file's: unless the caller passes
  ``trust_endpoints=True``, the saved pool's ``api_base``, ``api_key_env``, headers and
  credentials, and hyperparameters of the same kind (a judge's endpoint or key variable), are
  ignored, with one warning naming them;
* saving writes no secret (:meth:`~llmrouter_core.pool.Pool.scrubbed`, one warning naming what
  was dropped) and is atomic: the new files are written to a fresh directory that then takes
  the old one's place, so an interrupted save leaves the old router (or none), never a mix.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from llmrouter_core.errors import PersistenceError, UnknownRouterError
from llmrouter_core.pool import Pool
from llmrouter_core.routers.base import Router
from llmrouter_core.routers.costs import CostModel

__all__ = ["FORMAT", "FORMAT_VERSION", "load_router", "save_router"]

logger = logging.getLogger(__name__)

FORMAT = "llmrouter-core/router"
FORMAT_VERSION = 1
_COST_PREFIX = "__cost__/"
_FILES = ("router.json", "arrays.npz")


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
    """Write ``router`` to directory ``path``, replacing a router saved there before.

    No secret is written: credentials in the pool or the hyperparameters are dropped, with one
    warning naming them. The save is atomic (see the module docstring).

    Raises:
        PersistenceError: The router is not registered or not fitted, its state is not
            serialisable, or ``path`` is a file or a non-empty directory that does not hold a
            saved router.
    """
    from llmrouter_core import __version__
    from llmrouter_core.routers.registry import registered_name
    from llmrouter_core.secrets import scrub_secrets

    router._check_fitted()
    out = Path(path)
    check_save_target(out)
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
    pool, dropped = router.pool_.scrubbed()
    params, dropped_params = scrub_secrets(_json_safe(router.get_params(), "hyperparameters"))
    dropped += [f"hyperparameter {p}" for p in dropped_params]
    if dropped:
        logger.warning(
            "not saving secrets with the router (give keys through API_KEYS or api_key_env): %s",
            "; ".join(dropped),
        )
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "router": name,
        "params": params,
        "models": list(router.models_),
        "pool": pool.to_dict(),
        "cost_model": {"per_query": router.cost_model_.per_query},
        "calibration": _json_safe(router.calibration_, "calibration"),
        "n_train": int(getattr(router, "n_train_", 0)),
        "state": _json_safe(meta, "router state"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".saving", dir=out.parent))
    try:
        with (staging / "arrays.npz").open("wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in all_arrays.items()})  # type: ignore[arg-type]
        (staging / "router.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp creates 0700; a saved router is an ordinary dir
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def check_save_target(out: Path) -> None:
    """Raise :class:`PersistenceError` unless ``out`` can receive a saved router: it does not
    exist, is an empty directory, or holds a saved router (which the save replaces)."""
    if out.exists() and not out.is_dir():
        raise PersistenceError(f"cannot save a router to {out}: it is a file, not a directory")
    if out.is_dir():
        entries = {p.name for p in out.iterdir()}
        if entries and not entries <= set(_FILES):
            raise PersistenceError(
                f"cannot save a router to {out}: the directory holds other files "
                f"({', '.join(sorted(entries - set(_FILES))[:3])}); choose an empty or new "
                "directory"
            )


def _swap_in(staging: Path, out: Path) -> None:
    """Put directory ``staging`` in the place of ``out`` (which may hold an older router)."""
    if not out.exists():
        os.replace(staging, out)
        return
    old = out.with_name(f".{out.name}.{os.getpid()}.replaced")
    os.replace(out, old)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(old, out)  # put the old router back
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_router(path: str | os.PathLike[str], *, trust_endpoints: bool = False) -> Router:
    """Load a router saved by :meth:`Router.save`.

    Args:
        path: The router directory.
        trust_endpoints: Use the endpoints, key variables and headers saved with the router
            (its pool's ``api_base`` / ``api_key_env`` / headers, a judge's endpoint). Off by
            default: a router directory is untrusted input, and its models are called at
            their providers' own endpoints with the caller's keys, or through the pool the
            caller passes to the executor. What is ignored is logged once and listed in
            ``router.ignored_endpoints_``.

    Raises:
        PersistenceError: The directory is missing, corrupt, of another format version, or
            names a router class that is not registered.

    Example:
        >>> router = load_router("runs/default")  # doctest: +SKIP
        >>> router.route("What is 2 + 2?").model  # doctest: +SKIP
        'mistralai/mistral-7b-chat'
    """
    from llmrouter_core.routers.registry import registered_router_class
    from llmrouter_core.secrets import strip_endpoints

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
        cls = registered_router_class(str(doc.get("router")))
    except UnknownRouterError as exc:
        raise PersistenceError(f"{meta_path}: {exc}") from exc
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise PersistenceError(f"cannot read {arrays_path}: {exc}") from exc
    try:
        params = _from_json(doc["params"])
        pool = Pool.from_dict(doc["pool"])
        ignored: list[str] = []
        if not trust_endpoints:
            pool, ignored = pool.without_endpoints()
            params, ignored_params = strip_endpoints(params)
            ignored += [f"hyperparameter {p}" for p in ignored_params]
        if ignored:
            logger.warning(
                "ignoring endpoints and secrets saved in %s (load with trust_endpoints=True, "
                "or --trust-endpoints, to use them): %s",
                root,
                "; ".join(ignored),
            )
        router: Router = cls(**params)
        router.ignored_endpoints_ = ignored
        router.models_ = list(doc["models"])
        router.pool_ = pool
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

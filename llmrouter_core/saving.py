"""Saving a fitted router as plain files: ``router.json`` and ``arrays.npz``.

No secret is written (credentials in the pool or the hyperparameters are dropped, with one
warning naming them), and the save is atomic: the new files are written to a fresh directory
that then takes the old one's place, so an interrupted save leaves the old router (or none),
never a mix. :mod:`llmrouter_core.persistence` reads them back, as untrusted input.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrouter_core.errors import PersistenceError
from llmrouter_core.policy import UtilityPolicy
from llmrouter_core.scoring import scorer_name
from llmrouter_core.scoring.estimator import EstimatorScorer

if TYPE_CHECKING:
    from llmrouter_core.router import Router

__all__ = ["FORMAT", "FORMAT_VERSION", "check_save_target", "save_router"]

logger = logging.getLogger(__name__)

FORMAT = "llmrouter-core/router"
FORMAT_VERSION = 2
FILES = ("router.json", "arrays.npz")
CUSTOM = "custom"


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


def _scorer_spec(router: Router) -> dict[str, Any]:
    scorer = router.scorer_
    if isinstance(scorer, EstimatorScorer):
        return {"name": "estimator", "input": scorer.input}
    name = scorer_name(scorer)
    if name is None:
        raise PersistenceError(
            f"{type(scorer).__name__} is not a registered scorer and not a scikit-learn "
            "estimator; wrap it in EstimatorScorer or register it to save the router"
        )
    return {"name": name, "params": _json_safe(scorer.get_params(), "scorer parameters")}


def _policy_spec(router: Router) -> dict[str, Any] | None:
    policy: Any = router.policy
    if policy is None:
        return None
    if type(policy) is UtilityPolicy:
        return {"kind": "utility", "cost_weight": _json_safe(policy.cost_weight, "policy")}
    if callable(getattr(policy, "fit", None)):
        from llmrouter_core.cascades import policy_name

        name = policy_name(policy)
        if name is not None:
            params = _json_safe(policy.get_params(deep=False), "policy parameters")
            return {"kind": name, "params": params}
    raise PersistenceError(
        f"a router with a {type(policy).__name__} default policy cannot be saved (only the "
        "knob and the registered trained policies can); save it without one and pass the "
        "policy to route()"
    )


def _policy_state(router: Router) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """A trained policy's fitted state: JSON metadata and arrays (``policy/...``)."""
    trained = getattr(router, "policy_", None)
    if trained is None:
        return None, {}
    meta, arrays = trained.get_state()
    return _json_safe(meta, "policy state"), {f"policy/{k}": v for k, v in arrays.items()}


def save_router(
    router: Router,
    path: str | os.PathLike[str],
    *,
    wrapper: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> Path:
    """Write ``router`` to directory ``path``, replacing a router saved there before.

    No secret is written: credentials in the pool or the hyperparameters are dropped, with one
    warning naming them. The save is atomic (see the module docstring).

    ``wrapper`` is the JSON section and the arrays of a router that wraps ``router`` (a
    personalized router saves its base this way); loading rebuilds the wrapper around it.

    Raises:
        PersistenceError: The router is not fitted, its name is not registered (and it is not
            a plain composition), its state is not serialisable, or ``path`` is a file or a
            non-empty directory that does not hold a saved router.
    """
    from llmrouter_core import __version__
    from llmrouter_core.secrets import scrub_secrets

    router._check_fitted()
    out = Path(path)
    check_save_target(out)
    # The registry names the routers it builds; loading resolves the name (an unregistered
    # one is refused there). A router of a class of its own must carry a registered name.
    name = router.name
    if name == CUSTOM and type(router).__name__ != "Router":
        raise PersistenceError(
            f"{type(router).__name__} must be registered (llmrouter_core.register_router) "
            "to be saved"
        )
    scorer_meta, scorer_arrays = router.scorer_.get_state()
    arrays: dict[str, Any] = {f"scorer/{k}": v for k, v in scorer_arrays.items()}
    arrays["prior"] = router.prior_
    arrays.update({f"cost/{k}": v for k, v in router.cost_model_.get_state().items()})
    if router.embedder_ is not None:
        arrays.update({f"embedder/{k}": v for k, v in router.embedder_.get_state().items()})
    if router.projector_ is not None:
        arrays.update({f"proj/{k}": v for k, v in router.projector_.get_state().items()})
    policy_meta, policy_arrays = _policy_state(router)
    arrays.update(policy_arrays)
    if wrapper is not None:
        arrays.update({f"wrapper/{k}": v for k, v in wrapper[1].items()})
    for key, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise PersistenceError(f"array {key!r} has dtype object; only numeric arrays are saved")
    params = {
        k: v for k, v in router.get_params(deep=False).items() if k not in ("scorer", "policy")
    }
    pool, dropped = router.pool_.scrubbed()
    params, dropped_params = scrub_secrets(_json_safe(params, "hyperparameters"))
    scorer_spec, dropped_scorer = scrub_secrets(_scorer_spec(router))
    dropped += [f"hyperparameter {p}" for p in dropped_params + dropped_scorer]
    if dropped:
        logger.warning(
            "not saving secrets with the router (give keys through API_KEYS or api_key_env): %s",
            "; ".join(dropped),
        )
    embedder = router.embedder_
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "router": name,
        "params": params,
        "scorer": scorer_spec,
        "policy": _policy_spec(router),
        "models": list(router.models_),
        "pool": pool.to_dict(),
        "calibration": _json_safe(router.calibration_.to_dict(), "calibration"),
        "n_train": int(getattr(router, "n_train_", 0)),
        "unmeasured_models": list(getattr(router, "unmeasured_models_", [])),
        "state": {
            "scorer": _json_safe(scorer_meta, "scorer state"),
            "blend": router.blend_,
            "margin": float(router.margin_),
            "anchor_per_budget": bool(router.anchor_per_budget_),
            "best_params": _json_safe(router.best_params_, "chosen hyperparameters"),
            "cost_model": router.cost_model_.kind,
            "embedder": None
            if embedder is None
            else {"name": embedder.name, "config": _json_safe(embedder.get_config(), "embedder")},
            "projector": router.projector_ is not None,
            "policy": policy_meta,
        },
    }
    if wrapper is not None:
        doc["wrapper"] = _json_safe(wrapper[0], "wrapper")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".saving", dir=out.parent))
    try:
        with (staging / "arrays.npz").open("wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
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
        if entries and not entries <= set(FILES):
            raise PersistenceError(
                f"cannot save a router to {out}: the directory holds other files "
                f"({', '.join(sorted(entries - set(FILES))[:3])}); choose an empty or new "
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

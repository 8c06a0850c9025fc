"""Loading trained routers from plain files (written by :mod:`llmrouter_core.saving`).

A saved router is a directory with ``router.json`` (format version, the registry name,
hyperparameters, the scorer's name and parameters, pool, calibration and JSON state) and
``arrays.npz`` (numeric state; a scikit-learn estimator of the user's in ``skops`` format).

A router directory is untrusted input, like a downloaded model file:

* loading reads arrays with ``allow_pickle=False`` (never unpickles); a user's estimator is
  read with ``skops.io``, which refuses any type outside its trusted set unless the caller
  names it (``trusted_types=``); the router name goes through
  :func:`~llmrouter_core.registry.get_composition`, the scorer name through the fixed
  scorer registry and a trained policy's through :data:`llmrouter_core.cascades.POLICIES`,
  which refuse anything unregistered *before* importing it;
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
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from llmrouter_core.errors import PersistenceError, UnknownRouterError
from llmrouter_core.features import get_embedder
from llmrouter_core.policy import Calibration, UtilityPolicy
from llmrouter_core.pool import Pool
from llmrouter_core.registry import Composition, get_composition
from llmrouter_core.router import Router
from llmrouter_core.saving import CUSTOM, FORMAT, FORMAT_VERSION
from llmrouter_core.scoring import get_scorer
from llmrouter_core.scoring.estimator import EstimatorScorer
from llmrouter_core.scoring.heads import sub_arrays
from llmrouter_core.training.costs import COST_MODELS, cost_model_from_state
from llmrouter_core.training.projection import Projector

__all__ = ["load_router"]

logger = logging.getLogger(__name__)

_CUSTOM = CUSTOM


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _read(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    meta_path, arrays_path = root / "router.json", root / "arrays.npz"
    if not root.is_dir():
        raise PersistenceError(f"router directory not found: {root}")
    if not meta_path.is_file() or not arrays_path.is_file():
        raise PersistenceError(f"{root} is not a saved router (router.json / arrays.npz missing)")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PersistenceError(f"cannot read {meta_path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PersistenceError(f"{meta_path} is not a llmrouter-core router file")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise PersistenceError(
            f"{meta_path} has format version {version!r} (written by llmrouter-core "
            f"{doc.get('library_version', '?')}); this library reads version {FORMAT_VERSION}: "
            f"retrain it, e.g. llmrouter train --router {doc.get('router', 'NAME')} --data ... "
            "--out DIR"
        )
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise PersistenceError(f"cannot read {arrays_path}: {type(exc).__name__}: {exc}") from exc
    return doc, arrays


def load_router(
    path: str | os.PathLike[str],
    *,
    trust_endpoints: bool = False,
    trusted_types: list[str] | None = None,
    store: Any = None,
) -> Router:
    """Load a router saved by :meth:`Router.save`.

    Args:
        path: The router directory.
        trust_endpoints: Use the endpoints, key variables and headers saved with the router
            (its pool's ``api_base`` / ``api_key_env`` / headers, a judge's endpoint). Off by
            default: a router directory is untrusted input, and its models are called at
            their providers' own endpoints with the caller's keys, or through the pool the
            caller passes to the executor. What is ignored is logged once and listed in
            ``router.ignored_endpoints_``.
        trusted_types: Types outside skops' trusted set that a saved scikit-learn estimator
            may use (the error that refuses them names them).
        store: For a personalized router: its feedback store (a URL such as
            ``"sqlite:///feedback.db"`` or a store object); default: the SQLite store it was
            saved with, or the feedback saved with it.

    Raises:
        PersistenceError: The directory is missing, corrupt, of another format version, or
            names a router or scorer that is not registered.

    Example:
        >>> router = load_router("runs/default")  # doctest: +SKIP
        >>> router.route("What is 2 + 2?").model  # doctest: +SKIP
        'mistralai/mistral-7b-chat'
    """
    from llmrouter_core.secrets import strip_endpoints

    root = Path(path)
    doc, arrays = _read(root)
    name = str(doc.get("router"))
    try:
        entry = None if name == _CUSTOM else get_composition(name)
    except UnknownRouterError as exc:
        raise PersistenceError(f"{root / 'router.json'}: {exc}") from exc
    try:
        params = _from_json(doc["params"])
        scorer_params = _from_json(doc["scorer"].get("params", {}))
        pool = Pool.from_dict(doc["pool"])
        ignored: list[str] = []
        if not trust_endpoints:
            pool, ignored = pool.without_endpoints()
            params, ignored_params = strip_endpoints(params)
            scorer_params, ignored_scorer = strip_endpoints(scorer_params)
            ignored += [f"hyperparameter {p}" for p in ignored_params + ignored_scorer]
        if ignored:
            logger.warning(
                "ignoring endpoints and secrets saved in %s (load with trust_endpoints=True, "
                "or --trust-endpoints, to use them): %s",
                root,
                "; ".join(ignored),
            )
        router = _new_router(entry, name, doc, params, scorer_params)
        router.ignored_endpoints_ = ignored
        _restore(router, doc, arrays, pool, trusted_types)
        if doc.get("wrapper") is not None:
            router = _wrapped(router, _from_json(doc["wrapper"]), arrays, store)
    except PersistenceError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise PersistenceError(
            f"{root}: incomplete or corrupt router files ({type(exc).__name__}: {exc})"
        ) from exc
    return router


def _wrapped(base: Router, section: Any, arrays: dict[str, Any], store: Any) -> Router:
    """The router saved around ``base`` (only the kinds named here are known)."""
    kind = section.get("kind") if isinstance(section, dict) else None
    if kind != "personalized":
        raise PersistenceError(f"the saved router is wrapped in an unknown kind {kind!r}")
    from llmrouter_core.errors import DataError
    from llmrouter_core.personalized import PersonalizedRouter

    try:
        return PersonalizedRouter.from_saved(base, section, sub_arrays(arrays, "wrapper/"), store)
    except DataError as exc:
        raise PersistenceError(f"the saved personalized router: {exc}") from exc


def _new_router(
    entry: Any, name: str, doc: dict[str, Any], params: dict[str, Any], scorer_params: Any
) -> Router:
    spec = doc["scorer"]
    if spec.get("name") == "estimator":
        scorer: Any = EstimatorScorer(estimator=None, input=str(spec.get("input", "features")))
    else:
        try:
            scorer = get_scorer(str(spec["name"]), **scorer_params)
        except ValueError as exc:
            raise PersistenceError(f"saved router: {exc}") from exc
    policy: Any = None
    if doc.get("policy") is not None:
        policy = _policy(_from_json(doc["policy"]))
    if isinstance(entry, type) and issubclass(entry, Router):
        router = entry(scorer=scorer, policy=policy, **params)
    else:
        router = Router(scorer, policy=policy, **params)
        if isinstance(entry, Composition):
            router.family = entry.family
    router.name = name
    return router


def _policy(spec: Any) -> Any:
    """The saved default policy: the knob, or a trained policy named in
    :data:`llmrouter_core.cascades.POLICIES` (a name read from the file is never imported)."""
    if not isinstance(spec, dict):
        raise PersistenceError("the saved policy is not a JSON object")
    kind = spec.get("kind", "utility")
    if kind == "utility":
        return UtilityPolicy(spec.get("cost_weight"))
    from llmrouter_core.cascades import POLICIES

    cls = POLICIES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise PersistenceError(
            f"the saved router names an unknown policy {kind!r} (known: utility, "
            f"{', '.join(POLICIES)})"
        )
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise PersistenceError("the saved policy parameters are not a JSON object")
    try:
        return cls(**params)
    except TypeError as exc:
        raise PersistenceError(f"saved {kind} policy: {exc}") from exc


def _restore(
    router: Router,
    doc: dict[str, Any],
    arrays: dict[str, Any],
    pool: Pool,
    trusted_types: list[str] | None,
) -> None:
    state = doc["state"]
    models = [str(m) for m in doc["models"]]
    if list(pool.names) != models:
        raise PersistenceError("the saved pool does not list the saved models")
    router.models_ = models
    router.pool_ = pool
    router.n_train_ = int(doc.get("n_train", 0))
    router.unmeasured_models_ = [str(m) for m in doc.get("unmeasured_models", [])]
    router.calibration_ = Calibration.from_dict(_from_json(doc["calibration"]))
    router.blend_ = float(state["blend"])
    router.margin_ = float(state.get("margin", 0.0))
    router.anchor_per_budget_ = bool(state.get("anchor_per_budget", False))
    if not router.margin_ >= 0:
        raise PersistenceError("the saved anchor margin is out of range")
    router.best_params_ = _from_json(state["best_params"])
    router.cv_results_ = []
    router.prior_ = np.asarray(arrays["prior"], dtype=np.float64)
    if router.prior_.shape != (len(models),):
        raise PersistenceError(
            f"the saved prior has {router.prior_.shape} values for {len(models)} models"
        )
    kind = str(state["cost_model"])
    if kind not in COST_MODELS:
        raise PersistenceError(f"unknown cost model {kind!r} in the saved router")
    router.cost_model_ = cost_model_from_state(kind, sub_arrays(arrays, "cost/"))
    emb = state.get("embedder")
    router.embedder_ = None
    if emb is not None:
        router.embedder_ = get_embedder(str(emb["name"]), **_from_json(emb["config"]))
        router.embedder_.set_state(sub_arrays(arrays, "embedder/"))
    router.projector_ = (
        Projector.from_state(sub_arrays(arrays, "proj/")) if state.get("projector") else None
    )
    scorer = router._template()
    scorer_arrays = sub_arrays(arrays, "scorer/")
    if isinstance(scorer, EstimatorScorer):
        scorer.set_state(_from_json(state["scorer"]), scorer_arrays, trusted_types or ())
    else:
        scorer.set_state(_from_json(state["scorer"]), scorer_arrays)
    router.scorer_ = scorer
    policy_state = state.get("policy")
    if policy_state is not None:
        if not callable(getattr(router.policy, "set_state", None)):
            raise PersistenceError("the saved router has a trained policy's state but no policy")
        trained = clone(router.policy)
        trained.set_state(_from_json(policy_state), sub_arrays(arrays, "policy/"))
        if any(m not in models for m in getattr(trained, "chain_", ())):
            raise PersistenceError("the saved policy's chain names models outside the pool")
        router.policy_ = trained
    tags = scorer.tags
    if not (tags.calls_models or tags.evaluation_only or kind == "measured"):
        _check_shapes(router)


def _check_shapes(router: Router) -> None:
    """One prediction on a probe query: a file whose parts do not fit together (an edited
    model list, a truncated array) fails here, at load, instead of at routing time."""
    try:
        q, c = router.predict(["probe query for loading"])
    except Exception as exc:
        raise PersistenceError(
            f"the saved router's parts do not fit together ({type(exc).__name__}: {exc})"
        ) from exc
    m = len(router.models_)
    if (
        q.shape != (1, m)
        or c.shape != (1, m)
        or not np.isfinite(q).all()
        or not np.isfinite(c).all()
        or (c < 0).any()
    ):
        raise PersistenceError(
            f"the saved router predicts {q.shape} qualities and {c.shape} costs for a pool of "
            f"{m} models, or values that are not finite"
        )

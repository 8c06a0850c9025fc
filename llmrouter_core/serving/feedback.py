"""``POST /v1/feedback``: outcomes for routers that learn from them.

Two forms, by the router:

* online routers (their scorer is tagged ``online``, e.g. ``bandit``):
  ``{"model": "llmrouter/<router>", "query", "answered_by", "score"}`` with ``score`` in
  [0, 1];
* per-user routers (``supports_feedback``, e.g. ``personalized``):
  ``{"model", "user", "query", "answered_by", "rating"}`` and/or ``"preferred_over"`` (another
  pool model whose answer the user liked less).

Items are checked here before they are recorded (with Redis, every replica applies them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmrouter_core.serving.keys import ApiKey
from llmrouter_core.serving.protocol import ROUTER_PREFIX, ApiError

__all__ = ["apply_feedback", "check_feedback", "learns_online", "per_user"]


def per_user(router: Any) -> bool:
    """Whether ``router`` takes per-user feedback (``feedback(user, query, model, ...)``)."""
    return bool(getattr(router, "supports_feedback", False))


def learns_online(router: Any) -> bool:
    """Whether ``router`` learns from scored outcomes (its scorer is tagged ``online``)."""
    tags = getattr(getattr(router, "scorer_", None), "tags", None)
    return bool(getattr(tags, "online", False)) and hasattr(router, "feedback")


def _unit(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ApiError(400, f"'{name}' must be a number in [0, 1]", param=name)
    return float(value)


def check_feedback(
    routers: Mapping[str, Any], body: Any, key: ApiKey | None
) -> tuple[str, dict[str, Any]]:
    """``(router name, item)`` of a feedback body; every problem is one :class:`ApiError`."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.startswith(ROUTER_PREFIX):
        raise ApiError(400, "'model' must name a router (llmrouter/<router>)", param="model")
    name = model[len(ROUTER_PREFIX) :].split(":")[0]
    router = routers.get(name)
    if router is None:
        raise ApiError(404, f"unknown model {model}", code="model_not_found", param="model")
    if key is not None and not key.allows(name):
        raise ApiError(
            403, f"this key may not use {model}", code="model_not_allowed", kind="forbidden"
        )
    query, answered_by = body.get("query"), body.get("answered_by")
    if not isinstance(query, str) or not query.strip():
        raise ApiError(400, "'query' must be a non-empty string", param="query")
    models = list(router.models_)
    if answered_by not in models:
        raise ApiError(
            400,
            f"'answered_by' must be one of the router's models: {', '.join(models)}",
            param="answered_by",
        )
    item: dict[str, Any] = {"query": query, "answered_by": answered_by}
    if per_user(router):
        user = body.get("user")
        if not isinstance(user, str) or not user.strip():
            raise ApiError(400, f"router {name} learns per user: give 'user'", param="user")
        item["user"] = user
        if body.get("rating") is not None:
            item["rating"] = _unit(body["rating"], "rating")
        other = body.get("preferred_over")
        if other is not None:
            if other not in models or other == answered_by:
                raise ApiError(
                    400,
                    "'preferred_over' must be another of the router's models",
                    param="preferred_over",
                )
            item["preferred_over"] = other
        if "rating" not in item and "preferred_over" not in item:
            raise ApiError(400, "give 'rating' or 'preferred_over'", param="rating")
        return name, item
    if not learns_online(router):
        raise ApiError(400, f"router {name} does not learn from feedback", code="unsupported")
    item["score"] = _unit(body.get("score"), "score")
    return name, item


def apply_feedback(routers: Mapping[str, Any], name: str, item: Mapping[str, Any]) -> None:
    """Apply one checked item to this process's router ``name``."""
    router = routers.get(name)
    if router is None:
        return
    query, model = str(item["query"]), str(item["answered_by"])
    if "user" in item:
        router.feedback(
            str(item["user"]),
            query,
            model,
            rating=item.get("rating"),
            preferred_over=item.get("preferred_over"),
        )
    else:
        router.feedback(query, model, float(item["score"]))

"""Personalized routing: per-user preferences learned from feedback.

* :class:`PersonalizedRouter` (``get_router("personalized", base="auto", store=...)``): any
  base router, adjusted for each user from that user's feedback, with an exact cold start;
* :mod:`~llmrouter_core.personalized.store`: where feedback lives (memory or SQLite);
* :mod:`~llmrouter_core.personalized.learner`: the per-user model (``learner="offsets"``,
  the default);
* :mod:`~llmrouter_core.personalized.graph`: a GMTRouter-style graph learner shared by all
  users (``learner="graph"``, the ``torch`` extra).

See docs/personalized.md.
"""

from __future__ import annotations

from llmrouter_core.personalized.learner import Evidence, OffsetLearner
from llmrouter_core.personalized.router import PersonalizedRouter, UserProfile
from llmrouter_core.personalized.store import (
    SCHEMA_VERSION,
    FeedbackEvent,
    FeedbackStore,
    MemoryStore,
    SQLiteStore,
    export_user,
    import_user,
    open_store,
)

__all__ = [
    "SCHEMA_VERSION",
    "Evidence",
    "FeedbackEvent",
    "FeedbackStore",
    "MemoryStore",
    "OffsetLearner",
    "PersonalizedRouter",
    "SQLiteStore",
    "UserProfile",
    "export_user",
    "import_user",
    "open_store",
]

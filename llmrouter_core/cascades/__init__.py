"""Cascades: call models cheap to expensive and stop at the first answer an acceptor accepts.

A cascade may call several models for one query and reads their answers, so its parts differ
from a router's scorer:

* :mod:`.answers`: answer keys, agreement between answers, and the stage features;
* :mod:`.frugalgpt`: FrugalGPT's answer scorer (trained on recorded answers) and its chain,
  label and threshold search;
* :mod:`.automix`: AutoMix's verifier (few-shot prompts, :func:`parse_verdict`), real
  verifier outcomes on recorded answers (:func:`collect_verifications`,
  :class:`VerificationLog`);
* :mod:`.policies`: :class:`FrugalGPTPolicy` and :class:`AutoMixPolicy`, trained policies
  whose decisions carry a :class:`~llmrouter_core.decision.CascadePlan`.

The executor carries out every cascade plan (:mod:`llmrouter_core.execution.plans`); the
generic :class:`~llmrouter_core.policy.CascadePolicy` builds one from any router's
predictions, judged by AutoMix's verifier (``acceptor="verify"``).

Example:
    >>> from llmrouter_core import get_router
    >>> get_router("frugalgpt", max_length=3).policy.max_length
    3
"""

from __future__ import annotations

from llmrouter_core.cascades.answers import LABELS, answer_agreement, answer_key
from llmrouter_core.cascades.automix import (
    VerificationLog,
    Verifier,
    collect_verifications,
    parse_verdict,
    verification_messages,
)
from llmrouter_core.cascades.frugalgpt import AnswerScorer
from llmrouter_core.cascades.policies import (
    POLICIES,
    AutoMixPolicy,
    FrugalGPTPolicy,
    policy_name,
)

__all__ = [
    "LABELS",
    "POLICIES",
    "AnswerScorer",
    "AutoMixPolicy",
    "FrugalGPTPolicy",
    "VerificationLog",
    "Verifier",
    "answer_agreement",
    "answer_key",
    "collect_verifications",
    "parse_verdict",
    "policy_name",
    "verification_messages",
]

"""AutoMix's verifier (Madaan et al., 2023, "AutoMix"): is this answer correct? Ask a model.

The small model answers; then a verifier (by default the same model: *self*-verification) is
asked ``n_samples`` times, with a few-shot prompt, whether the answer is correct. The share of
"correct" verdicts is the answer's score, compared with the stage's threshold by the executor
(AutoMix's meta-verifier in its simplest form). :class:`Verifier` is the cascade acceptor
``"verify"``: every router resolves it (:meth:`~llmrouter_core.Router.acceptor`), so
``CascadePolicy(acceptor="verify")`` works with any scorer. Its calls go through the executor
(budget, keys, retries) and are charged to the request.

Verifier outcomes are not part of any recorded dataset, so they only ever come from real
calls: :func:`collect_verifications` runs the verifier on recorded answers and returns a
:class:`VerificationLog`, which AutoMix's offline replay reads.

Example:
    >>> parse_verdict("Correct"), parse_verdict(" incorrect, because"), parse_verdict("?")
    (True, False, None)
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from llmrouter_core.cascades.answers import recorded_answers, tail
from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import NotFittedError
from llmrouter_core.execution.budget import BudgetExceededError
from llmrouter_core.execution.plans import ACaller, Caller, Judgement, StageContext
from llmrouter_core.execution.results import ExecutionError, ExecutionResult

if TYPE_CHECKING:
    from llmrouter_core.execution.executor import Executor

__all__ = [
    "VerificationLog",
    "Verifier",
    "collect_verifications",
    "parse_verdict",
    "verification_messages",
]

logger = logging.getLogger(__name__)

_VERIFY_SYSTEM = "You grade answers. Reply with exactly one word: Correct or Incorrect."
_VERIFY_TURN = (
    "Question: {question}\n\nProposed answer: {answer}\n\n"
    "Is the proposed answer correct? Reply Correct or Incorrect."
)
# Worked examples, given as earlier chat turns (small chat models follow the format far more
# often this way than with the examples inside one prompt).
_VERIFY_SHOTS = (
    ("What is the capital of France?", "Paris", "Correct"),
    ("How many legs does a spider have?", "Six", "Incorrect"),
    ("Which of these is a mammal? A) shark B) dolphin C) trout", "B", "Correct"),
)

# "The correct answer is ..." names a different answer: it counts as a negative verdict.
_NEGATIVE = re.compile(r"\b(incorrect|not correct|wrong|false|no|the correct answer is)\b")
_POSITIVE = re.compile(r"\b(correct|right|true|yes)\b")

#: Codes of a :class:`VerificationLog`'s verdicts.
CORRECT, INCORRECT, UNPARSED, CALL_FAILED = 1, 0, -1, -2


def verification_messages(
    question: str, answer: str, *, context_chars: int = 1500, answer_chars: int = 1500
) -> list[dict[str, str]]:
    """The few-shot self-verification request of AutoMix for one answer.

    Three worked examples come as earlier chat turns, then the question and the answer to
    check. Only the last ``context_chars`` characters of the question are shown (few-shot
    prompts keep the actual question at the end) and the first ``answer_chars`` of the answer.

    Example:
        >>> msgs = verification_messages("2 + 2 = ?", "4")
        >>> len(msgs), msgs[-1]["content"].splitlines()[2]
        (8, 'Proposed answer: 4')
    """
    q = tail(" ".join(question.split()), context_chars)
    a = " ".join(answer.split())[:answer_chars]
    out = [{"role": "system", "content": _VERIFY_SYSTEM}]
    for shot_q, shot_a, verdict in _VERIFY_SHOTS:
        out.append({"role": "user", "content": _VERIFY_TURN.format(question=shot_q, answer=shot_a)})
        out.append({"role": "assistant", "content": verdict})
    out.append({"role": "user", "content": _VERIFY_TURN.format(question=q, answer=a)})
    return out


def parse_verdict(text: str) -> bool | None:
    """A verifier's verdict: ``True`` (correct), ``False`` (incorrect) or ``None`` (neither).

    The first verdict word wins ("Incorrect. The correct answer is..." is ``False``).

    Example:
        >>> parse_verdict("No, the proposed answer is wrong"), parse_verdict("Yes")
        (False, True)
    """
    s = text.lower()
    neg, pos = _NEGATIVE.search(s), _POSITIVE.search(s)
    if neg is None and pos is None:
        return None
    if pos is None:
        return False
    if neg is None:
        return True
    return pos.start() < neg.start()


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying one answer: the share of "correct" verdicts, the parsed
    verdicts, their codes (see :class:`VerificationLog`) and the USD the calls cost."""

    confidence: float
    verdicts: tuple[bool | None, ...]
    codes: tuple[int, ...]
    cost: float


@dataclass(frozen=True)
class Verifier:
    """AutoMix's verifier, the cascade acceptor ``"verify"``.

    Args:
        verifier: The pool model that verifies (``None``: the stage's own model,
            self-verification). It must be in the executor's pool.
        n_samples: Verifier calls per answer.
        temperature: Sampling temperature of the verifier.
        max_tokens: Output tokens per verifier call.
        context_chars: The verifier sees the last this many characters of the question.

    Example:
        >>> Verifier(n_samples=3).messages("2 + 2 = ?", "4")[-1]["role"]
        'user'
    """

    verifier: str | None = None
    n_samples: int = 4
    temperature: float = 1.0
    max_tokens: int = 16
    context_chars: int = 1500

    def __post_init__(self) -> None:
        if int(self.n_samples) < 1:
            raise ValueError("n_samples must be >= 1")
        if not float(self.temperature) >= 0:
            raise ValueError("temperature must be >= 0")

    def messages(self, question: str, answer: str) -> list[dict[str, str]]:
        """The verification request for one answer."""
        return verification_messages(question, answer, context_chars=int(self.context_chars))

    def _kwargs(self) -> dict[str, Any]:
        return {"temperature": float(self.temperature), "max_tokens": int(self.max_tokens)}

    def verify(self, question: str, answer: str, model: str, call: Caller) -> Verification:
        """Ask the verifier (``model`` when verifying itself) ``n_samples`` times whether
        ``answer`` answers ``question``; ``call(messages, model, **kwargs)`` makes a call.
        A call that fails counts as "not verified"."""
        verifier = self.verifier or model
        messages = self.messages(question, answer)
        out: list[ExecutionResult | None] = []
        for _ in range(int(self.n_samples)):
            try:
                out.append(call(messages, verifier, **self._kwargs()))
            except (ExecutionError, BudgetExceededError):
                out.append(None)
        return _verification(out)

    async def averify(self, question: str, answer: str, model: str, acall: ACaller) -> Verification:
        """Async :meth:`verify` (the samples are asked one after the other)."""
        verifier = self.verifier or model
        messages = self.messages(question, answer)
        out: list[ExecutionResult | None] = []
        for _ in range(int(self.n_samples)):
            try:
                out.append(await acall(messages, verifier, **self._kwargs()))
            except (ExecutionError, BudgetExceededError):
                out.append(None)
        return _verification(out)

    def score(self, stage: StageContext, call: Caller) -> Judgement:
        """The share of "correct" verdicts on ``stage``'s answer (the acceptor protocol)."""
        v = self.verify(stage.query, stage.answer, stage.model, call)
        return Judgement(v.confidence, v.verdicts)

    async def ascore(self, stage: StageContext, acall: ACaller) -> Judgement:
        """Async :meth:`score`."""
        v = await self.averify(stage.query, stage.answer, stage.model, acall)
        return Judgement(v.confidence, v.verdicts)


def _verification(results: Sequence[ExecutionResult | None]) -> Verification:
    verdicts: list[bool | None] = []
    codes: list[int] = []
    cost = 0.0
    for res in results:
        if res is None:
            verdicts.append(None)
            codes.append(CALL_FAILED)
            continue
        cost += res.cost
        verdict = parse_verdict(res.answer)
        verdicts.append(verdict)
        codes.append(UNPARSED if verdict is None else int(verdict))
    confidence = sum(v is True for v in verdicts) / max(len(verdicts), 1)
    return Verification(confidence, tuple(verdicts), tuple(codes), cost)


@dataclass(frozen=True)
class VerificationLog:
    """Real verifier outcomes of AutoMix on recorded answers, for offline evaluation.

    Attributes:
        queries: ``n`` query texts.
        models: The verified chain models (every stage but the last).
        confidence: ``(n, stages)`` share of the ``k`` verdicts that said "correct"
            (unparseable verdicts and failed calls count as not verified).
        cost: ``(n, stages)`` USD spent on the verification calls.
        verdicts: ``(n, stages, k)``: 1 correct, 0 incorrect, -1 unparseable, -2 call failed.
        verifier: The model that verified (``None``: each stage's own model).

    Example:
        >>> log = VerificationLog(["q"], ["small"], np.array([[0.5]]), np.zeros((1, 1)),
        ...                       np.array([[[1, 0]]]), None)
        >>> log.parsed_share
        1.0
    """

    queries: list[str]
    models: list[str]
    confidence: FloatArray
    cost: FloatArray
    verdicts: npt.NDArray[np.int8] | npt.NDArray[np.int64]
    verifier: str | None

    @property
    def parsed_share(self) -> float:
        """Share of verifier calls whose answer was a verdict."""
        v = np.asarray(self.verdicts, dtype=np.int64)
        return float(np.mean(v >= 0)) if v.size else math.nan

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "queries": list(self.queries),
            "models": list(self.models),
            "confidence": np.asarray(self.confidence).tolist(),
            "cost": np.asarray(self.cost).tolist(),
            "verdicts": np.asarray(self.verdicts).tolist(),
            "verifier": self.verifier,
        }


def collect_verifications(
    router: Any, data: RoutingData, executor: Executor, **litellm_kwargs: Any
) -> VerificationLog:
    """Run an AutoMix router's verifier for real on the *recorded* answers of every stage of
    its chain but the last.

    Each query costs ``n_samples`` verifier calls per verified stage, made through
    ``executor`` (whose pool must have the verifier). The outcomes are real: nothing is
    simulated. Give the log to ``router.policy_.use_verifications(log)`` (or its
    ``simulate``) to replay the cascade on these queries.

    Args:
        router: A router fitted with the AutoMix policy (or the fitted policy itself).
        data: Queries with the recorded answers of the verified chain models.
        executor: Makes the calls.
        **litellm_kwargs: Passed to every verifier call.

    Raises:
        DataError: ``data`` lacks the recorded answers of the verified stages.
        UnknownModelError: The verifier is not in the executor's pool.
    """
    policy = getattr(router, "policy_", router)
    chain = getattr(policy, "chain_", None)
    verifier = getattr(policy, "verifier_", None)
    if chain is None or not isinstance(verifier, Verifier):
        raise NotFittedError("collect_verifications needs a router fitted with AutoMix's policy")
    stages = list(chain[:-1])
    answers = recorded_answers(data, stages) if stages else [[] for _ in data.queries]
    n = data.n_queries
    conf = np.zeros((n, len(stages)))
    cost = np.zeros((n, len(stages)))
    verdicts = np.full((n, len(stages), int(verifier.n_samples)), CALL_FAILED, dtype=np.int8)

    def call(messages: Any, model: str, **kwargs: Any) -> ExecutionResult:
        return executor.complete(messages, model=model, **{**litellm_kwargs, **kwargs})

    for i, query in enumerate(data.queries):
        for k, model in enumerate(stages):
            v = verifier.verify(query, answers[i][k], model, call)
            conf[i, k], cost[i, k] = v.confidence, v.cost
            verdicts[i, k] = v.codes
        logger.info("automix: verified %d/%d", i + 1, n)
    return VerificationLog(
        queries=list(data.queries),
        models=stages,
        confidence=conf,
        cost=cost,
        verdicts=verdicts,
        verifier=verifier.verifier,
    )

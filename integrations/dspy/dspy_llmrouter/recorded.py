"""Run DSPy programs on recorded answers: a pass-through adapter, an exact metric, a program.

The core's ``replay/<model>`` provider answers a prompt with the response that model really
gave to it in a routing dataset (RouterBench records the responses, scores and costs of 11
models), so a DSPy program can be run, evaluated and optimized offline on real outcomes:

* :class:`RecordedPromptAdapter` sends a predictor's single input field verbatim as the user
  message and reads the reply verbatim into its single output field. DSPy's chat adapter
  would wrap the prompt in field markers, and the replay provider only knows the exact
  recorded prompts; RouterBench's prompts already carry their own instructions and
  few-shot examples. Demos and instructions are therefore not rendered by this adapter.
* :class:`RecordedOutcomes` scores an answer with the dataset's own recorded score of the
  model that gave it (RouterBench: exact match of the chosen letter).
* :class:`VerifiedAnswer` is a three-stage program over multiple-choice prompts (ARC
  Challenge, WinoGrande): ``draft`` answers, ``check`` answers independently, and only when
  their letters differ does ``arbiter`` answer. The stages interact: which models draft and
  check decides how often the arbiter is paid for, and the final answer's correctness.

Example:
    >>> from dspy_llmrouter.recorded import choice_letter
    >>> choice_letter(" B) Dennis"), choice_letter("The answer is C."), choice_letter("I do")
    ('B', 'C', None)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import dspy

from llmrouter_core.errors import DataError

__all__ = [
    "RecordedOutcomes",
    "RecordedPromptAdapter",
    "RecordedQA",
    "VerifiedAnswer",
    "choice_letter",
    "recorded_examples",
]

_LEADING = re.compile(r"^\(?([A-E])\b")
_STATED = re.compile(r"answer is:?\s*\(?([A-E])\b", re.IGNORECASE)


def choice_letter(text: Any) -> str | None:
    """The option letter an answer chooses (leading ``B``/``(B)``/``B)``, or "answer is B")."""
    if not isinstance(text, str):
        return None
    stripped = text.strip()
    match = _LEADING.match(stripped) or _STATED.search(stripped)
    return match.group(1) if match else None


class RecordedQA(dspy.Signature):
    """Answer the prompt."""

    prompt: str = dspy.InputField()
    answer: str = dspy.OutputField()


class RecordedPromptAdapter(dspy.Adapter):
    """Send the one input field verbatim; read the reply verbatim into the one output field.

    Example:
        >>> msgs = RecordedPromptAdapter().format(RecordedQA, [], {"prompt": "2+2?"})
        >>> msgs
        [{'role': 'user', 'content': '2+2?'}]
    """

    def format(
        self, signature: Any, demos: list[dict[str, Any]], inputs: dict[str, Any]
    ) -> list[dict[str, Any]]:
        names = list(signature.input_fields)
        if len(names) != 1:
            raise DataError(
                f"RecordedPromptAdapter needs exactly one input field, {signature.__name__} has "
                f"{names}"
            )
        return [{"role": "user", "content": str(inputs[names[0]])}]

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        names = list(signature.output_fields)
        if len(names) != 1:
            raise DataError(
                f"RecordedPromptAdapter needs exactly one output field, {signature.__name__} has "
                f"{names}"
            )
        return {names[0]: completion}


def _norm(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


class RecordedOutcomes:
    """The recorded score of every (prompt, response) of a dataset with responses.

    Args:
        data: A :class:`~llmrouter_core.RoutingData` with ``responses`` (e.g. RouterBench).

    Raises:
        DataError: The data has no responses, or one response text got two different
            scores on the same prompt (then the text alone cannot tell the outcome).

    Example:
        >>> import numpy as np
        >>> from llmrouter_core import RoutingData
        >>> d = RoutingData(query_ids=["q"], queries=["2+2?"], models=["a", "b"],
        ...                 scores=np.array([[1.0, 0.0]]),
        ...                 responses=np.array([["4", "5"]], dtype=object))
        >>> RecordedOutcomes(d).score("2+2?", "5")
        0.0
    """

    def __init__(self, data: Any) -> None:
        if data.responses is None:
            raise DataError("RecordedOutcomes needs a dataset with recorded responses")
        self._scores: dict[str, dict[str, float]] = {}
        for i, prompt in enumerate(data.queries):
            row = self._scores.setdefault(_norm(prompt), {})
            for j in range(data.n_models):
                text, score = data.responses[i, j], data.scores[i, j]
                if not isinstance(text, str) or math.isnan(score):
                    continue
                key = _norm(text)
                if key in row and row[key] != float(score):
                    raise DataError(
                        f"query {data.query_ids[i]}: the response {key[:60]!r} is recorded "
                        "with two different scores"
                    )
                row[key] = float(score)

    def __contains__(self, prompt: object) -> bool:
        return isinstance(prompt, str) and _norm(prompt) in self._scores

    def score(self, prompt: str, answer: str) -> float:
        """The recorded score of ``answer`` to ``prompt``.

        Raises:
            DataError: The prompt or the answer is not recorded (the answer did not come
                from the dataset's models).
        """
        row = self._scores.get(_norm(prompt))
        if row is None:
            raise DataError(f"the prompt {prompt[:60]!r}... is not in the recorded data")
        value = row.get(_norm(answer or ""))
        if value is None:
            raise DataError(
                f"the answer {str(answer)[:60]!r} is not a recorded response to this prompt"
            )
        return value

    def metric(self, example: Any, prediction: Any, trace: Any = None) -> float:
        """DSPy metric: the recorded score of ``prediction.answer`` to ``example.prompt``."""
        return self.score(example.prompt, prediction.answer)


class VerifiedAnswer(dspy.Module):
    """Draft, check, and escalate to an arbiter only when draft and check disagree.

    Three predictors answer the same multiple-choice prompt: ``draft`` and ``check``
    independently; when both choose the same letter that answer is returned, otherwise
    ``arbiter``'s answer is. Each predictor can run on its own model or routing policy
    (``predictor.lm``), which is what :class:`~dspy_llmrouter.ModelAssignmentOptimizer` tunes.
    Runs under :class:`RecordedPromptAdapter` so recorded prompts reach the models verbatim.

    Example:
        >>> program = VerifiedAnswer()
        >>> [name for name, _ in program.named_predictors()]
        ['draft', 'check', 'arbiter']
    """

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict(RecordedQA)
        self.check = dspy.Predict(RecordedQA)
        self.arbiter = dspy.Predict(RecordedQA)

    def forward(self, prompt: str) -> dspy.Prediction:
        with dspy.context(adapter=RecordedPromptAdapter()):
            first = self.draft(prompt=prompt).answer
            second = self.check(prompt=prompt).answer
            letter = choice_letter(first)
            if letter is not None and letter == choice_letter(second):
                return dspy.Prediction(answer=first, escalated=False)
            return dspy.Prediction(answer=self.arbiter(prompt=prompt).answer, escalated=True)


def recorded_examples(
    data: Any, rows: Iterable[int] | None = None, tasks: Sequence[str] | None = None
) -> list[dspy.Example]:
    """DSPy examples (input ``prompt``; ``query_id`` and ``task`` kept) of ``data``'s rows.

    Args:
        data: A :class:`~llmrouter_core.RoutingData`.
        rows: Row indices (default: all).
        tasks: Keep only rows of these tasks (``data.tasks``).
    """
    picked = range(data.n_queries) if rows is None else rows
    out = []
    for i in picked:
        task = data.tasks[i] if data.tasks is not None else ""
        if tasks is not None and task not in tasks:
            continue
        out.append(
            dspy.Example(prompt=data.queries[i], query_id=data.query_ids[i], task=task).with_inputs(
                "prompt"
            )
        )
    return out

"""What a cascade reads of the answers themselves: answer keys, agreement, stage features.

A cascade sees each called model's answer before it decides to escalate. Independent models
that give the same answer are more often right, so how far an answer agrees with the answers
already obtained is FrugalGPT's strongest stage feature (:func:`stage_matrix`).

Example:
    >>> answer_agreement("B", " b\\n"), answer_agreement("A", "B")
    (1.0, 0.0)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import DataError

__all__ = [
    "LABELS",
    "SHORT_ANSWER_CHARS",
    "agreement_tensor",
    "answer_agreement",
    "answer_key",
    "is_text",
    "recorded_answers",
    "stage_labels",
    "stage_matrix",
    "tail",
]

#: Training labels of the FrugalGPT scorer: the answer is good (its score); the answer is as
#: good as the last model's (ties count as as good: escalating would not have helped); or the
#: gain of keeping it, ``(1 + score - score of the last model) / 2`` (a soft label: 0.5 on ties).
LABELS = ("good", "as_good_as_last", "gain")

#: Answers up to this many characters are compared as a choice/short answer; longer ones by
#: the overlap of their word sets.
SHORT_ANSWER_CHARS = 40
_WORD = re.compile(r"\w+")

Key = str | frozenset[str]


def is_text(value: Any) -> bool:
    """Whether ``value`` is a recorded answer (a string; missing answers are not)."""
    return isinstance(value, str)


def tail(text: str, chars: int) -> str:
    """The last ``chars`` characters (where few-shot prompts keep the actual question)."""
    return text[-chars:] if len(text) > chars else text


def answer_key(text: str) -> Key:
    """A normalised form of an answer for comparing answers of different models.

    Short answers (multiple choice, a number, a name) become their lower-case words, or just
    the leading letter/digit when the answer starts with a one-character token (``"B) house"``
    -> ``"b"``); long answers become the set of their lower-case words.

    Example:
        >>> answer_key(" D\\n"), answer_key("B) house"), answer_key("Rachel.")
        ('d', 'b', 'rachel')
    """
    s = " ".join(str(text).lower().split())
    if len(s) <= SHORT_ANSWER_CHARS:
        tokens = _WORD.findall(s)
        if not tokens:
            return s
        if len(tokens[0]) == 1:
            return str(tokens[0])
        return " ".join(tokens)
    return frozenset(_WORD.findall(s))


def answer_agreement(a: str | None, b: str | None) -> float:
    """How far two answers agree, in [0, 1] (``nan`` if one is missing).

    Two short answers agree (1.0) when their keys are equal (see :func:`answer_key`); two long
    answers by the Jaccard overlap of their word sets; a short and a long answer do not agree.

    Example:
        >>> answer_agreement("C", "C\\n"), answer_agreement("C", "I do not know")
        (1.0, 0.0)
    """
    if not isinstance(a, str) or not isinstance(b, str):
        return math.nan
    return _agreement(answer_key(a), answer_key(b))


def _agreement(ka: Key, kb: Key) -> float:
    if isinstance(ka, str) and isinstance(kb, str):
        return float(ka == kb)
    if isinstance(ka, frozenset) and isinstance(kb, frozenset):
        union = len(ka | kb)
        return len(ka & kb) / union if union else 1.0
    return 0.0


def agreement_tensor(answers: Sequence[Sequence[str | None]]) -> FloatArray:
    """``(n, k, k)`` pairwise agreement of ``k`` answers per query (``nan`` where missing)."""
    n = len(answers)
    k = len(answers[0]) if n else 0
    out = np.full((n, k, k), np.nan)
    for i, row in enumerate(answers):
        keys = [answer_key(a) if isinstance(a, str) else None for a in row]
        for p in range(k):
            kp = keys[p]
            if kp is None:
                continue
            out[i, p, p] = 1.0
            for r in range(p + 1, k):
                kr = keys[r]
                if kr is not None:
                    out[i, p, r] = out[i, r, p] = _agreement(kp, kr)
    return out


def stage_matrix(
    lz: FloatArray,
    ag: FloatArray,
    prev: Iterable[int],
    k: int,
    lz_mean: FloatArray,
    ag_mean: FloatArray,
    lq: FloatArray,
) -> FloatArray:
    """Stage features of chain position ``k`` after the positions ``prev`` were called.

    ``lz`` ``(n, K)``: logits of the per-model text scorers; ``ag`` ``(n, K, K)``: answer
    agreement. Per earlier stage ``p``: the agreement with it, the agreement times its logit
    (agreeing with a confident model counts more) and its logit; then the mean agreement and
    whether every earlier answer agrees; last, ``lq``: the logit of the last model's quality
    predicted from the question alone (what escalating can be expected to bring). ``nan`` (a
    model that failed) becomes its training mean.
    """
    cols = [lz[:, k], lq]
    agrees = []
    for p in prev:
        a = np.where(np.isnan(ag[:, k, p]), ag_mean[k, p], ag[:, k, p])
        z = np.where(np.isnan(lz[:, p]), lz_mean[p], lz[:, p])
        agrees.append(a)
        cols += [a, a * z, z]
    if agrees:
        stacked = np.column_stack(agrees)
        cols += [stacked.mean(axis=1), (stacked.min(axis=1) >= 1.0 - 1e-9).astype(float)]
    return np.column_stack(cols)


def stage_labels(scores: FloatArray, label: str) -> FloatArray:
    """``(n, K)`` training targets of the stage scorers for a chain's scores (see
    :data:`LABELS`).

    Example:
        >>> stage_labels(np.array([[1.0, 1.0], [0.0, 1.0]]), "gain")[:, 0].tolist()
        [0.5, 0.0]
    """
    if label == "good":
        return np.asarray(scores, dtype=np.float64)
    last = scores[:, [-1]]
    if label == "gain":
        return np.asarray(np.clip((1.0 + scores - last) / 2.0, 0.0, 1.0), dtype=np.float64)
    if label != "as_good_as_last":
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    # Ties count as "as good": escalating to the last model would not have raised the score.
    return (scores >= last - 1e-9).astype(np.float64)


def recorded_answers(data: RoutingData, models: Sequence[str]) -> list[list[str]]:
    """The recorded answers of ``models`` on every query of ``data``, one row per query.

    Raises:
        DataError: ``data`` has no recorded responses, or some of these models' are missing.
    """
    if data.responses is None:
        raise DataError(
            f"{data!r} has no recorded responses; replaying a cascade needs the answers of "
            "its chain models (e.g. RouterBench's files)"
        )
    cols = [data.model_index(m) for m in models]
    block = data.responses[:, cols]
    missing = [
        (i, models[k])
        for i in range(block.shape[0])
        for k in range(block.shape[1])
        if not is_text(block[i, k])
    ]
    if missing:
        i, model = missing[0]
        raise DataError(
            f"{len(missing)} recorded responses of the chain models are missing in {data!r} "
            f"(e.g. {model} on query {data.query_ids[i]!r}); drop those queries first"
        )
    return [[str(a) for a in row] for row in block]

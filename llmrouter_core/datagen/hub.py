"""The publishers' datasets on the hub: one :class:`~llmrouter_core.datagen.base.HubSpec` per
built-in task (dataset, configuration, the evaluation split read, and the adapter from a
record to an :class:`~llmrouter_core.datagen.base.Example`), and :func:`load_hub`, which reads
one with ``datasets`` (the ``datagen`` extra)."""

from __future__ import annotations

import ast
import hashlib
import random
import re
import string
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrouter_core.datagen.base import Adapter, Example, HubSpec
from llmrouter_core.errors import DataError, MissingExtraError

if TYPE_CHECKING:
    from llmrouter_core.datagen.tasks import Task

__all__ = [
    "ARC_CHALLENGE",
    "COMMONGEN",
    "COMMONSENSE_QA",
    "GPQA",
    "GSM8K",
    "HUMAN_EVAL",
    "MATH",
    "MBPP",
    "MMLU",
    "NQ_OPEN",
    "OPENBOOK_QA",
    "TRIVIA_QA",
    "load_hub",
    "routing_split",
]


def routing_split(example_id: str, test_share: int = 5) -> str:
    """``"test"`` for one id in ``test_share`` (by a hash of the id), else ``"train"``."""
    digest = hashlib.sha256(example_id.encode("utf-8")).digest()
    return "test" if digest[0] % test_share == 0 else "train"


def _text_id(task: str, text: str) -> str:
    return hashlib.sha256(f"{task}\n{text}".encode()).hexdigest()[:16]


def _need(record: Mapping[str, Any], key: str, task: str) -> Any:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{task} record lacks {key!r} (has {', '.join(map(str, record))})")
    return value


def _lettered(texts: Sequence[Any]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(string.ascii_uppercase, (str(t) for t in texts)))


def _choices_of(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """Options from a list of texts or a ``{"label"/"labels": [...], "text": [...]}``."""
    if isinstance(raw, str):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
                raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            raise DataError(f"{where}: cannot read choices {raw[:80]!r}") from None
    if isinstance(raw, Mapping):
        texts = raw.get("text")
        labels = raw.get("label", raw.get("labels"))
        if not isinstance(texts, Sequence) or not isinstance(labels, Sequence):
            raise DataError(f"{where}: choices need 'label' and 'text' lists")
        if len(texts) != len(labels):
            raise DataError(f"{where}: {len(labels)} choice labels for {len(texts)} texts")
        return tuple((str(lab).strip().upper(), str(t)) for lab, t in zip(labels, texts))
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        if raw and all(
            isinstance(c, list | tuple) and len(c) == 2 and isinstance(c[0], str) for c in raw
        ):
            return tuple((str(c[0]).upper(), str(c[1])) for c in raw)
        return _lettered(raw)
    raise DataError(f"{where}: choices must be a list or a label/text mapping")


def _entry_point(prompt: str, where: str) -> str:
    names = re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", prompt, re.M)
    if not names:
        raise DataError(f"{where}: no function to complete in the prompt")
    return str(names[-1])


# -- hub adapters ------------------------------------------------------------------------


def _nq(r: Mapping[str, Any], i: int) -> Example:
    q = _need(r, "question", "natural_qa")
    return Example(_text_id("nq", q), "natural_qa", q, list(_need(r, "answer", "natural_qa")))


def _trivia(r: Mapping[str, Any], i: int) -> Example:
    answer = _need(r, "answer", "trivia_qa")
    aliases = [answer.get("value", ""), *answer.get("aliases", [])]
    qid = str(r.get("question_id") or _text_id("trivia_qa", r["question"]))
    return Example(qid, "trivia_qa", _need(r, "question", "trivia_qa"), [a for a in aliases if a])


def _mmlu(r: Mapping[str, Any], i: int) -> Example:
    choices = _lettered(_need(r, "choices", "mmlu"))
    answer = int(_need(r, "answer", "mmlu"))
    if not 0 <= answer < len(choices):
        raise DataError(f"mmlu record {i}: answer index {answer} out of range")
    q = _need(r, "question", "mmlu")
    return Example(_text_id("mmlu", q + str(choices)), "mmlu", q, choices[answer][0], choices,
                   meta={"subject": r.get("subject", "")})  # fmt: skip


def _gpqa(r: Mapping[str, Any], i: int) -> Example:
    """GPQA lists the correct answer first: the options are shuffled with a seed from the
    question, and the gold letter is where the correct answer lands."""
    q = _need(r, "Question", "gpqa").strip()
    correct = str(_need(r, "Correct Answer", "gpqa")).strip()
    options = [correct] + [
        str(_need(r, f"Incorrect Answer {k}", "gpqa")).strip() for k in (1, 2, 3)
    ]
    order = list(range(4))
    random.Random(hashlib.sha256(q.encode()).digest()).shuffle(order)
    shuffled = [options[k] for k in order]
    choices = _lettered(shuffled)
    gold = choices[order.index(0)][0]
    qid = str(r.get("Record ID") or _text_id("gpqa", q))
    return Example(qid, "gpqa", q, gold, choices)


def _lettered_mc(task: str, question_key: str) -> Adapter:
    def adapt(r: Mapping[str, Any], i: int) -> Example:
        q = _need(r, question_key, task)
        choices = _choices_of(_need(r, "choices", task), f"{task} record {i}")
        gold = str(_need(r, "answerKey", task)).strip().upper()
        labels = [c[0] for c in choices]
        if gold.isdigit() and gold in labels:  # some ARC items are numbered 1-4: letter them
            gold = string.ascii_uppercase[labels.index(gold)]
            choices = _lettered([c[1] for c in choices])
        if gold not in {c[0] for c in choices}:
            raise DataError(f"{task} record {i}: answer {gold!r} is not an option")
        qid = str(r.get("id") or _text_id(task, q))
        return Example(qid, task, q, gold, choices)

    return adapt


def _gsm8k(r: Mapping[str, Any], i: int) -> Example:
    q = _need(r, "question", "gsm8k")
    return Example(_text_id("gsm8k", q), "gsm8k", q, _need(r, "answer", "gsm8k"))


def _math(r: Mapping[str, Any], i: int) -> Example:
    q = _need(r, "problem", "math")
    gold = r.get("answer") or _need(r, "solution", "math")
    qid = str(r.get("unique_id") or _text_id("math", q))
    return Example(qid, "math", q, gold, meta={"level": r.get("level"), "type": r.get("subject")})


def _mbpp(r: Mapping[str, Any], i: int) -> Example:
    tests = tuple(str(t) for t in _need(r, "test_list", "mbpp"))
    return Example(str(_need(r, "task_id", "mbpp")), "mbpp", _need(r, "text", "mbpp"), list(tests),
                   tests=tests, meta={"setup": r.get("test_setup_code") or ""})  # fmt: skip


def _humaneval(r: Mapping[str, Any], i: int) -> Example:
    prompt = _need(r, "prompt", "human_eval")
    entry = r.get("entry_point") or _entry_point(prompt, f"human_eval record {i}")
    qid = str(_need(r, "task_id", "human_eval")).replace("HumanEval/", "")
    return Example(qid, "human_eval", prompt, _need(r, "test", "human_eval"),
                   meta={"entry_point": entry})  # fmt: skip


def _commongen(r: Mapping[str, Any], i: int) -> Example:
    concepts = [str(c) for c in _need(r, "concepts", "commongen")]
    qid = str(r.get("concept_set_idx", _text_id("commongen", " ".join(concepts))))
    return Example(qid, "commongen", ", ".join(concepts), concepts)


NQ_OPEN = HubSpec("google-research-datasets/nq_open", None, "validation", _nq)
TRIVIA_QA = HubSpec("mandarjoshi/trivia_qa", "rc.nocontext", "validation", _trivia)
MMLU = HubSpec("cais/mmlu", "all", "test", _mmlu)
GPQA = HubSpec("Idavidrein/gpqa", "gpqa_main", "train", _gpqa)
COMMONSENSE_QA = HubSpec("tau/commonsense_qa", None, "validation",
                         _lettered_mc("commonsense_qa", "question"))  # fmt: skip
OPENBOOK_QA = HubSpec("allenai/openbookqa", "main", "test",
                      _lettered_mc("openbook_qa", "question_stem"))  # fmt: skip
ARC_CHALLENGE = HubSpec("allenai/ai2_arc", "ARC-Challenge", "test",
                        _lettered_mc("arc_challenge", "question"))  # fmt: skip
GSM8K = HubSpec("openai/gsm8k", "main", "test", _gsm8k)
MATH = HubSpec("HuggingFaceH4/MATH-500", None, "test", _math)
MBPP = HubSpec("google-research-datasets/mbpp", "full", "test", _mbpp)
HUMAN_EVAL = HubSpec("openai/openai_humaneval", None, "test", _humaneval)
COMMONGEN = HubSpec("allenai/common_gen", None, "validation", _commongen)


def load_hub(task: Task, *, data_files: str | Path | None = None) -> Iterator[
    tuple[str, Example]
]:
    """``(routing split, example)`` of ``task`` from its hub dataset (``data_files``: read a
    local JSON/JSONL file in the hub dataset's record format instead, through the same
    ``datasets`` code path)."""
    if task.hub is None:
        raise DataError(f"task {task.name!r} has no hub dataset; give a local file")
    try:
        import datasets
    except ImportError:
        raise MissingExtraError("datasets", "datagen", "loading tasks from the hub") from None
    spec = task.hub
    try:
        if data_files is not None:
            ds = datasets.load_dataset("json", data_files=str(data_files), split="train")
        else:
            ds = datasets.load_dataset(spec.path, spec.config, split=spec.split)
    except (OSError, ValueError, ConnectionError) as exc:
        raise DataError(
            f"cannot load {spec.path} ({spec.config or 'default'}, {spec.split}) from the hub: "
            f"{exc}; offline, use --source llmrouter or a local JSONL file"
        ) from None
    for i, record in enumerate(ds):
        ex = spec.adapter(record, i)
        yield routing_split(ex.query_id), ex

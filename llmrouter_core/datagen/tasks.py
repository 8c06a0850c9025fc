"""Tasks: where the queries come from, how they are asked, and how answers are scored.

A :class:`Task` is a source of :class:`Example` s (a publisher's dataset on the hub, or local
JSONL), a prompt template and a metric. The prompt always shows what the model needs to
answer: a multiple-choice question lists every option with its letter, a coding task lists
the tests its function must pass (an example without them is an error, never a silent
prompt without them).

The 11 built-in tasks are named as in LLMRouter's query files: ``natural_qa``,
``trivia_qa``, ``mmlu``, ``gpqa``, ``mbpp``, ``human_eval``, ``gsm8k``, ``commonsense_qa``,
``math``, ``openbook_qa``, ``arc_challenge``; ``commongen`` is registered too. A user task
is a :class:`Task` registered with :func:`register_task`, exposed by an installed package
under the ``llmrouter.tasks`` entry-point group, or named by a dotted path
(``"my_pkg.tasks:my_task"``).

Example:
    >>> from llmrouter_core.datagen.tasks import Example, get_task
    >>> task = get_task("arc_challenge")
    >>> ex = Example(id="q1", task="arc_challenge", question="Which is a metal?",
    ...              gold="B", choices=(("A", "wood"), ("B", "iron")))
    >>> print(task.prompt(ex))
    Which is a metal?
    <BLANKLINE>
    A. wood
    B. iron
    <BLANKLINE>
    Answer with the letter of the correct option.
    >>> task.score("The answer is B.", ex)
    1.0
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmrouter_core.datagen import metrics as M
from llmrouter_core.datagen.base import Example, HubSpec
from llmrouter_core.errors import DataError

if TYPE_CHECKING:
    from llmrouter_core.datagen.sandbox import Sandbox

__all__ = [
    "ENTRY_POINT_GROUP",
    "Example",
    "Task",
    "get_task",
    "list_tasks",
    "register_task",
]

ENTRY_POINT_GROUP = "llmrouter.tasks"


Template = Callable[[Example], str]
Metric = Callable[[str, Example, "Sandbox | None"], float]


@dataclass(frozen=True)
class Task:
    """A benchmark: source, prompt template, metric.

    Attributes:
        name: Registry name (also the ``task`` column of the routing data).
        template: Renders an :class:`Example` as the prompt sent to every model.
        metric: ``(answer, example, sandbox) -> score in [0, 1]``.
        metric_name: A short name of the metric (manifest, docs).
        hub: Where the publisher's dataset lives (``None``: local files only).
        local_name: The ``task_name`` of this task in LLMRouter's query files.
        max_tokens: Output tokens a model may use for an answer.
        program: For a coding task, ``(answer, example) -> program`` (the model's code and
            the tests); the program runs in a sandbox and passes when it exits cleanly.
        description: One line.
    """

    name: str
    template: Template
    metric: Metric
    metric_name: str
    hub: HubSpec | None = None
    local_name: str | None = None
    max_tokens: int = 256
    program: Callable[[str, Example], str] | None = None
    description: str = ""

    @property
    def needs_sandbox(self) -> bool:
        """The metric runs model-written code."""
        return self.program is not None

    def prompt(self, example: Example) -> str:
        """The prompt for ``example``."""
        return self.template(example)

    def score(self, answer: str, example: Example, sandbox: Sandbox | None = None) -> float:
        """The answer's score in [0, 1]."""
        if self.needs_sandbox and sandbox is None:
            raise ValueError(f"task {self.name!r} runs code: give a Sandbox")
        return float(self.metric(answer, example, sandbox))


# -- templates ---------------------------------------------------------------------------


def qa_template(ex: Example) -> str:
    """Short-answer question."""
    return f"Answer the question with a short answer.\nQuestion: {ex.question}\nAnswer:"


def mc_template(ex: Example) -> str:
    """Question, every option with its letter, and the answer format."""
    if len(ex.choices) < 2:
        raise DataError(f"{ex.query_id}: a multiple-choice question needs its options")
    options = "\n".join(f"{label}. {text}" for label, text in ex.choices)
    return (
        f"{ex.question.strip()}\n\n{options}\n\nAnswer with the letter of the correct option."
    )


def gsm8k_template(ex: Example) -> str:
    """Word problem, worked step by step, final number last."""
    return (
        f"{ex.question.strip()}\n\nSolve it step by step, then give the final answer as "
        "'The answer is N'."
    )


def math_template(ex: Example) -> str:
    """Competition problem, final answer boxed."""
    return f"{ex.question.strip()}\n\nPut the final answer in \\boxed{{}}."


def mbpp_template(ex: Example) -> str:
    """Description and the tests the function must pass."""
    if not ex.tests:
        raise DataError(f"{ex.query_id}: a coding task needs its tests in the prompt")
    tests = "\n".join(ex.tests)
    return (
        f"{ex.question.strip()}\nYour code should pass these tests:\n\n{tests}\n\n"
        "Write the Python code in one ```python block."
    )


def humaneval_template(ex: Example) -> str:
    """The function signature and docstring to complete."""
    return (
        "Complete this Python function. Reply with the whole function in one ```python "
        f"block.\n\n```python\n{ex.question.rstrip()}\n```"
    )


def commongen_template(ex: Example) -> str:
    """Concepts to use in one sentence."""
    return (
        "Write one short, natural sentence that uses all of these words: "
        f"{ex.question.strip()}\nSentence:"
    )


# -- metrics -----------------------------------------------------------------------------


def _f1(answer: str, ex: Example, _: Sandbox | None) -> float:
    return M.token_f1(answer, ex.gold)


def _mc(answer: str, ex: Example, _: Sandbox | None) -> float:
    labels = [c[0] for c in ex.choices]
    return M.choice_accuracy(answer, str(ex.gold), labels, [c[1] for c in ex.choices])


def _numeric(answer: str, ex: Example, _: Sandbox | None) -> float:
    return M.numeric_match(answer, ex.gold)


def _math(answer: str, ex: Example, _: Sandbox | None) -> float:
    return M.math_equivalence(answer, str(ex.gold))


def _coverage(answer: str, ex: Example, _: Sandbox | None) -> float:
    first = answer.strip().splitlines()[0] if answer.strip() else ""
    return M.concept_coverage(first, list(ex.gold))


def mbpp_program(answer: str, ex: Example) -> str:
    """The model's code, the task's setup code, then its tests."""
    setup = str(ex.meta.get("setup") or "")
    return f"{M.extract_code(answer)}\n\n{setup}\n\n" + "\n".join(ex.tests) + "\n"


def humaneval_program(answer: str, ex: Example) -> str:
    """The prompt's imports and the model's function (or the prompt + the model's body when
    the answer does not define the function), then HumanEval's ``check``."""
    entry = str(ex.meta.get("entry_point") or "")
    code = M.extract_code(answer)
    if re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.M):
        imports = "\n".join(
            line for line in ex.question.splitlines() if re.match(r"\s*(import|from)\s", line)
        )
        program = f"{imports}\n{code}"
    else:
        program = f"{ex.question}{code}"
    return f"{program}\n\n{ex.gold}\n\ncheck({entry})\n"


def _code(program: Callable[[str, Example], str]) -> Metric:
    def metric(answer: str, ex: Example, sandbox: Sandbox | None) -> float:
        assert sandbox is not None  # Task.score checks this
        return M.code_pass(program(answer, ex), sandbox)[0]

    return metric


# -- registry ----------------------------------------------------------------------------

_TASKS: dict[str, Task] = {}
_lock = threading.Lock()


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add ``task`` to the registry (a name taken already is a ``ValueError`` unless
    ``replace``)."""
    with _lock:
        if task.name in _TASKS and not replace:
            raise ValueError(f"task {task.name!r} is registered already")
        _TASKS[task.name] = task
    return task


def _from_entry_points(name: str) -> Task | None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _as_task(ep.load(), f"entry point {ep.value}")
    return None


def _as_task(obj: Any, where: str) -> Task:
    if callable(obj) and not isinstance(obj, Task):
        obj = obj()
    if not isinstance(obj, Task):
        raise DataError(f"{where} is not a llmrouter_core.datagen.Task")
    return obj


def _from_dotted(path: str) -> Task:
    module_name, _, attr = path.partition(":")
    if not attr:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        obj = getattr(module, attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise DataError(f"cannot import task {path!r}: {exc}") from None
    return _as_task(obj, path)


def get_task(name: str | Task) -> Task:
    """A task by registry name, entry-point name (group ``llmrouter.tasks``) or dotted path
    (``"pkg.module:task"``; a callable there is called)."""
    if isinstance(name, Task):
        return name
    _builtins()
    with _lock:
        found = _TASKS.get(name)
    if found is not None:
        return found
    task = _from_entry_points(name)
    if task is not None:
        return task
    if ":" in name or "." in name:
        return _from_dotted(name)
    raise DataError(f"unknown task {name!r}; known: {', '.join(list_tasks())}")


def list_tasks() -> list[str]:
    """Registered task names (built-ins first)."""
    _builtins()
    with _lock:
        return list(_TASKS)


_loaded = False


def _builtins() -> None:
    global _loaded
    if _loaded:
        return
    from llmrouter_core.datagen import hub as S

    qa = functools.partial(
        Task, template=qa_template, metric=_f1, metric_name="token_f1", max_tokens=32
    )
    mc = functools.partial(
        Task, template=mc_template, metric=_mc, metric_name="choice", max_tokens=32
    )
    builtins = [
        qa("natural_qa", hub=S.NQ_OPEN, local_name="natural_qa",
             description="Natural Questions (open): short factual answers"),
        qa("trivia_qa", hub=S.TRIVIA_QA, local_name="trivia_qa",
             description="TriviaQA (no context): trivia answers"),
        mc("mmlu", hub=S.MMLU, local_name="mmlu",
             description="MMLU test questions, 4 options"),
        mc("gpqa", hub=S.GPQA, local_name="gpqa",
             description="GPQA main: graduate-level science, 4 options"),
        mc("commonsense_qa", hub=S.COMMONSENSE_QA, local_name="commonsense_qa",
             description="CommonsenseQA, 5 options"),
        mc("openbook_qa", hub=S.OPENBOOK_QA, local_name="openbook_qa",
             description="OpenBookQA, 4 options"),
        mc("arc_challenge", hub=S.ARC_CHALLENGE, local_name="arc_challenge",
             description="ARC-Challenge, grade-school science"),
        Task("gsm8k", gsm8k_template, _numeric, "numeric", hub=S.GSM8K, local_name="gsm8k",
             max_tokens=256, description="GSM8K word problems: the final number"),
        Task("math", math_template, _math, "math_equivalence", hub=S.MATH, local_name="math",
             max_tokens=384, description="MATH competition problems: the boxed answer"),
        Task("mbpp", mbpp_template, _code(mbpp_program), "pass@1", hub=S.MBPP,
             local_name="mbpp", max_tokens=256, program=mbpp_program,
             description="MBPP: a Python function that passes the shown asserts"),
        Task("human_eval", humaneval_template, _code(humaneval_program), "pass@1",
             hub=S.HUMAN_EVAL, local_name="human_eval", max_tokens=256,
             program=humaneval_program,
             description="HumanEval: complete a Python function"),
        Task("commongen", commongen_template, _coverage, "coverage", hub=S.COMMONGEN,
             local_name="commongen", max_tokens=48,
             description="CommonGen: one sentence using every concept"),
    ]  # fmt: skip
    with _lock:
        for task in builtins:
            _TASKS.setdefault(task.name, task)
        _loaded = True

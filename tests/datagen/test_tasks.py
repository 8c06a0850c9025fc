"""Tasks: the registry (built-ins, entry points, dotted paths), prompts that always carry
options and tests, LLMRouter's query files and the hub datasets' record formats."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmrouter_core.datagen.sources import (
    llmrouter_query_files,
    load_examples,
    load_hub,
    load_jsonl,
    load_llmrouter_queries,
    routing_split,
)
from llmrouter_core.datagen.tasks import (
    Example,
    Task,
    get_task,
    list_tasks,
    qa_template,
    register_task,
)
from llmrouter_core.errors import DataError

HUB = Path(__file__).parent / "hub_fixtures"


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """``datasets`` reads local files without asking the hub anything."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    try:
        import datasets.config
        import huggingface_hub.constants
    except ImportError:
        return
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)
ELEVEN = [
    "natural_qa", "trivia_qa", "mmlu", "gpqa", "mbpp", "human_eval", "gsm8k",
    "commonsense_qa", "math", "openbook_qa", "arc_challenge",
]  # fmt: skip
MC = ["mmlu", "commonsense_qa", "openbook_qa", "arc_challenge"]


def test_the_eleven_tasks_are_registered() -> None:
    names = list_tasks()
    assert set(ELEVEN) <= set(names) and "commongen" in names
    for name in ELEVEN:
        task = get_task(name)
        assert task.hub is not None and task.metric_name
    assert get_task("mmlu").hub.split == "test"  # never auxiliary_train
    with pytest.raises(DataError, match="unknown task 'nope'"):
        get_task("nope")


def test_every_multiple_choice_prompt_lists_every_option(data_dir: Path) -> None:
    files = llmrouter_query_files(data_dir / "llmrouter")
    for name in MC:
        task = get_task(name)
        n = 0
        for split, path in files.items():
            for _, ex in load_llmrouter_queries(task, path, split=split):
                prompt = task.prompt(ex)
                assert len(ex.choices) >= 3, ex.id
                for label, text in ex.choices:
                    assert f"\n{label}. {text}" in prompt
                assert ex.gold in {label for label, _ in ex.choices}
                n += 1
        assert n >= 500, name


def test_every_mbpp_prompt_shows_its_tests(data_dir: Path) -> None:
    task = get_task("mbpp")
    files = llmrouter_query_files(data_dir / "llmrouter")
    n = 0
    for split, path in files.items():
        for _, ex in load_llmrouter_queries(task, path, split=split):
            prompt = task.prompt(ex)
            assert ex.tests and all(t.startswith("assert") for t in ex.tests)
            for test in ex.tests:
                assert test in prompt
            n += 1
    assert n == 550


def test_a_prompt_without_options_or_tests_is_an_error() -> None:
    with pytest.raises(DataError, match="options"):
        get_task("mmlu").prompt(Example("1", "mmlu", "Which?", "A"))
    with pytest.raises(DataError, match="tests"):
        get_task("mbpp").prompt(Example("1", "mbpp", "Write f.", []))


def test_llmrouter_queries_load_per_split(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMROUTER_DATA_DIR", str(data_dir))
    rows = load_examples(get_task("gsm8k"), source="llmrouter", splits=["train", "test"], limit=4)
    assert [s for s, _ in rows] == ["train"] * 4 + ["test"] * 4
    assert len({ex.id for _, ex in rows}) == 8
    ex = rows[0][1]
    assert get_task("gsm8k").score("The answer is 20,000.", ex) == 1.0  # "#### 20,000"
    he = load_examples(get_task("human_eval"), source="llmrouter", splits=["train"], limit=1)
    assert he[0][1].meta["entry_point"] == "has_close_elements"
    # LLMRouter's test file repeats train items (HumanEval): an id is drawn once.
    both = load_examples(get_task("human_eval"), source="llmrouter", splits=["train", "test"])
    assert len({ex.id for _, ex in both}) == len(both)
    # auto: the query files hold the task, so no hub is needed.
    assert load_examples(get_task("mmlu"), source="auto", limit=2)[0][1].choices


def test_human_eval_gold_solution_passes_and_a_wrong_one_fails(data_dir: Path) -> None:
    from llmrouter_core.datagen.sandbox import Sandbox

    task = get_task("human_eval")
    path = llmrouter_query_files(data_dir / "llmrouter")["train"]
    ex = next(ex for _, ex in load_llmrouter_queries(task, path, split="train"))
    good = (
        "```python\nfrom typing import List\n\ndef has_close_elements(numbers: List[float], "
        "threshold: float) -> bool:\n    return any(abs(a - b) < threshold for i, a in "
        "enumerate(numbers) for b in numbers[i + 1:])\n```"
    )
    sandbox = Sandbox(timeout=10)
    assert task.score(good, ex, sandbox) == 1.0
    assert task.score(good.replace("< threshold", "> threshold"), ex, sandbox) == 0.0
    # A body-only answer is appended to the prompt.
    body = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) " \
           "for b in numbers[i + 1:])\n"
    assert task.score(body, ex, sandbox) == 1.0
    with pytest.raises(ValueError, match="Sandbox"):
        task.score(good, ex)


def test_mbpp_scores_in_the_sandbox(data_dir: Path) -> None:
    from llmrouter_core.datagen.sandbox import Sandbox

    task = get_task("mbpp")
    path = llmrouter_query_files(data_dir / "llmrouter")["train"]
    ex = next(ex for _, ex in load_llmrouter_queries(task, path, split="train"))
    assert ex.tests[0] == "assert min_Jumps(3,4,11)==3.5"
    solution = (
        "```python\ndef min_Jumps(a, b, d):\n    temp = a\n    a = min(a, b)\n"
        "    b = max(temp, b)\n    if d >= b:\n        return (d + b - 1) / b\n"
        "    if d == 0:\n        return 0\n    if d == a:\n        return 1\n"
        "    return 2\n```"
    )
    sandbox = Sandbox(timeout=10)
    assert task.score(solution, ex, sandbox) == 1.0
    assert task.score("```python\ndef min_Jumps(a, b, d):\n    return 0\n```", ex, sandbox) == 0.0


HUB_CASES = [
    ("natural_qa", "nq_open.jsonl", 2),
    ("trivia_qa", "trivia_qa.jsonl", 1),
    ("mmlu", "mmlu.jsonl", 2),
    ("gpqa", "gpqa.jsonl", 4),
    ("commonsense_qa", "commonsense_qa.jsonl", 1),
    ("openbook_qa", "openbookqa.jsonl", 1),
    ("arc_challenge", "ai2_arc.jsonl", 2),
    ("gsm8k", "gsm8k.jsonl", 1),
    ("math", "math500.jsonl", 1),
    ("mbpp", "mbpp.jsonl", 1),
    ("human_eval", "humaneval.jsonl", 1),
    ("commongen", "common_gen.jsonl", 1),
]


@pytest.mark.parametrize(("name", "fixture", "count"), HUB_CASES)
def test_hub_records_become_examples(name: str, fixture: str, count: int) -> None:
    """The hub loading code (``datasets``) on records in each publisher's format."""
    pytest.importorskip("datasets")
    task = get_task(name)
    rows = list(load_hub(task, data_files=HUB / fixture))
    assert len(rows) == count
    for split, ex in rows:
        assert split == routing_split(ex.query_id)
        assert ex.task == name and task.prompt(ex)
    ex = rows[0][1]
    right = {
        "natural_qa": "Herman Melville",
        "trivia_qa": "Planet Mars",
        "mmlu": "The answer is B",
        "commonsense_qa": "A",
        "openbook_qa": "(B)",
        "arc_challenge": "B. thermometer",
        "gsm8k": "36 - 7 = 29. The answer is 29",
        "math": "\\boxed{\\frac{5}{6}}",
        "commongen": "A man throws a frisbee and his dog catches it.",
    }
    if name in right:
        assert task.score(right[name], ex) == 1.0
        assert task.score("no idea", ex) == 0.0


def test_hub_numbered_arc_options_are_lettered() -> None:
    pytest.importorskip("datasets")
    rows = [ex for _, ex in load_hub(get_task("arc_challenge"), data_files=HUB / "ai2_arc.jsonl")]
    numbered = rows[1]
    assert [c[0] for c in numbered.choices] == ["A", "B", "C", "D"]
    assert numbered.gold == "B" and dict(numbered.choices)["B"] == "6"


def test_gpqa_gold_letter_follows_the_shuffle() -> None:
    """GPQA lists the correct answer first; after the shuffle the gold letter must point at
    it (LLMRouter lost it for about half of the questions)."""
    pytest.importorskip("datasets")
    import json

    records = [json.loads(line) for line in (HUB / "gpqa.jsonl").open()]
    rows = [ex for _, ex in load_hub(get_task("gpqa"), data_files=HUB / "gpqa.jsonl")]
    positions = set()
    for record, ex in zip(records, rows):
        assert dict(ex.choices)[ex.gold] == record["Correct Answer"]
        assert sorted(t for _, t in ex.choices) == sorted(
            [record["Correct Answer"]] + [record[f"Incorrect Answer {k}"] for k in (1, 2, 3)]
        )
        positions.add(ex.gold)
    assert len(positions) > 1  # not always the first option
    again = [ex for _, ex in load_hub(get_task("gpqa"), data_files=HUB / "gpqa.jsonl")]
    assert again == rows  # the shuffle is deterministic


def test_a_record_missing_a_field_names_it(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "choices": ["a", "b"]}\n')
    with pytest.raises(DataError, match="'answer'"):
        list(load_hub(get_task("mmlu"), data_files=bad))


def test_user_jsonl_task_and_dotted_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "capitals.jsonl"
    data.write_text(
        '{"id": "fr", "question": "Capital of France?", "gold": ["Paris"], "split": "train"}\n'
        '{"id": "it", "question": "Capital of Italy?", "gold": "Rome", "split": "test"}\n'
        '{"id": "mc", "question": "Largest?", "gold": "B", "choices": ["cat", "whale"]}\n'
    )
    module = tmp_path / "my_tasks.py"
    module.write_text(
        "from llmrouter_core.datagen.tasks import Task, qa_template\n"
        "from llmrouter_core.datagen.metrics import exact_match\n"
        "capitals = Task('capitals', qa_template, lambda a, ex, sb: exact_match(a, ex.gold),\n"
        "                'exact_match')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    task = get_task("my_tasks:capitals")
    assert task.name == "capitals"
    rows = list(load_jsonl(task, data))
    assert [(s, ex.id) for s, ex in rows[:2]] == [("train", "fr"), ("test", "it")]
    assert rows[2][1].choices == (("A", "cat"), ("B", "whale"))
    assert task.score("paris", rows[0][1]) == 1.0
    with pytest.raises(DataError, match="cannot import task"):
        get_task("my_tasks:missing")
    with pytest.raises(DataError, match="no 'gold'"):
        (tmp_path / "nogold.jsonl").write_text('{"question": "q"}\n')
        list(load_jsonl(task, tmp_path / "nogold.jsonl"))


def test_entry_point_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "ep_tasks.py"
    pkg.write_text(
        "from llmrouter_core.datagen.tasks import Task, qa_template\n"
        "def make():\n"
        "    return Task('plugin_task', qa_template, lambda a, ex, sb: 1.0, 'always')\n"
    )
    dist = tmp_path / "ep_tasks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-tasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[llmrouter.tasks]\nplugin_task = ep_tasks:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    task = get_task("plugin_task")
    assert task.name == "plugin_task" and task.metric_name == "always"


def test_register_task_refuses_a_taken_name() -> None:
    task = Task("arc_challenge", qa_template, lambda a, ex, sb: 0.0, "x")
    with pytest.raises(ValueError, match="registered already"):
        register_task(task)
    assert sys.modules["llmrouter_core.datagen.tasks"]

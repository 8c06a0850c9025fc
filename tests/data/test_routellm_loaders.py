"""RouteLLM evaluation data: MMLU / GSM8K pair CSVs, MT-Bench judgements, pool prices."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrouter_core.data import (
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    DefectError,
    load_data,
    load_routellm_csv,
    load_routellm_mt_bench,
    routellm_pool,
)
from llmrouter_core.errors import DataError


@pytest.fixture
def rl(shared_data: Path) -> Path:
    return shared_data / "routellm"


def _bool(v: str) -> float:
    return {"True": 1.0, "False": 0.0}[v]


def test_mmlu_folder_of_subject_files(rl: Path, csv_slice, tmp_path: Path) -> None:
    folder = tmp_path / "mmlu" / "responses"
    subjects = ("anatomy", "virology")
    for s in subjects:
        csv_slice(rl / "mmlu" / "responses" / f"mmlu_{s}.csv", folder / f"mmlu_{s}.csv", range(25))
    d = load_routellm_csv(folder)
    assert d.name == "routellm-mmlu"
    assert d.models == [ROUTELLM_WEAK, ROUTELLM_STRONG]
    assert d.n_queries == 50
    assert d.query_ids[0] == "mmlu_anatomy:0" and d.query_ids[25] == "mmlu_virology:0"
    assert d.tasks == ["mmlu_anatomy"] * 25 + ["mmlu_virology"] * 25
    raw = pd.concat(
        [pd.read_csv(folder / f"mmlu_{s}.csv", dtype=str, keep_default_na=False) for s in subjects]
    )
    assert d.queries == raw["prompt"].tolist()
    for j, m in enumerate(d.models):
        assert d.scores[:, j].tolist() == [_bool(v) for v in raw[m]]
    assert d.costs is None and d.meta["excluded_contaminated"] == 0
    assert load_data(tmp_path / "mmlu").n_queries == 50  # folder holding responses/


def test_gsm8k_contaminated_prompts_are_excluded(rl: Path, csv_slice, tmp_path: Path) -> None:
    src = rl / "gsm8k"
    dirty = pd.read_json(src / "contaminated_prompts.jsonl", lines=True)["eval_prompt"].tolist()
    folder = tmp_path / "gsm8k"
    path = csv_slice(
        src / "gsm8k_responses.csv",
        folder / "gsm8k_responses.csv",
        where=lambda df: (df.index < 60) | df["prompt"].isin(dirty),
    )
    (folder / "contaminated_prompts.jsonl").write_text(
        (src / "contaminated_prompts.jsonl").read_text()
    )
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    n_dirty = int(raw["prompt"].isin(dirty).sum())
    assert n_dirty > 0
    d = load_routellm_csv(path)
    assert d.name == "routellm-gsm8k" and d.tasks is not None and d.tasks[0] == "gsm8k"
    assert d.meta["excluded_contaminated"] == n_dirty
    assert d.n_queries == len(raw) - n_dirty
    assert not set(d.queries) & set(dirty)
    assert any("contaminated" in n for n in d.meta["defects"]["notes"])
    assert d.responses is not None
    clean = raw[~raw["prompt"].isin(dirty)]
    assert (
        d.responses[:, d.model_index(ROUTELLM_STRONG)].tolist()
        == clean[f"{ROUTELLM_STRONG}_response"].tolist()
    )
    everything = load_routellm_csv(path, exclude_contaminated=False)
    assert everything.n_queries == len(raw)


def test_pair_csv_with_bad_values(rl: Path, csv_slice, tmp_path: Path) -> None:
    path = csv_slice(rl / "mmlu" / "responses" / "mmlu_anatomy.csv", tmp_path / "a.csv", range(10))
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.loc[4, ROUTELLM_WEAK] = "maybe"
    raw.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"1 rows have a score that is not numeric: a.csv row 5"):
        load_routellm_csv(path)
    raw.loc[4, ROUTELLM_WEAK] = ""
    raw.to_csv(path, index=False)
    with pytest.raises(DefectError) as exc:
        load_routellm_csv(path)
    assert exc.value.report.ids("missing_score") == ["a:4"]
    assert load_routellm_csv(path, on_defect="drop").n_queries == 9


@pytest.fixture
def mt(rl: Path, json_slice, tmp_path: Path) -> Path:
    src = rl / "mt_bench"
    folder = tmp_path / "mt_bench"
    qids = {81, 82, 101, 111, 141, 160}
    json_slice(
        src / "question.jsonl", folder / "question.jsonl", lambda i, o: o["question_id"] in qids
    )
    json_slice(
        src / "judgements.jsonl", folder / "judgements.jsonl", lambda i, o: o["question_id"] in qids
    )
    return folder


def test_mt_bench_score_is_mean_judge_score_over_ten(mt: Path) -> None:
    d = load_routellm_mt_bench(mt)
    questions = [json.loads(x) for x in (mt / "question.jsonl").read_text().splitlines()]
    judged: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in (mt / "judgements.jsonl").read_text().split("\n"):
        if line.strip():
            o = json.loads(line)
            judged[(f"mt_bench:{o['question_id']}", o["model"])].append(float(o["score"]))
    assert d.query_ids == [f"mt_bench:{q['question_id']}" for q in questions]
    assert d.queries == [q["turns"][0] for q in questions]
    assert d.tasks == [q["category"] for q in questions]
    assert sorted(d.models) == sorted([ROUTELLM_STRONG, ROUTELLM_WEAK])
    for i, qid in enumerate(d.query_ids):
        for j, m in enumerate(d.models):
            assert len(judged[(qid, m)]) == 2  # one judgement per turn
            assert d.scores[i, j] == pytest.approx(np.mean(judged[(qid, m)]) / 10)
    assert load_data(mt).n_queries == d.n_queries


def test_mt_bench_failed_judgement_and_bad_scores(mt: Path) -> None:
    lines = (mt / "judgements.jsonl").read_text().split("\n")
    first = json.loads(lines[0])
    first["score"] = -1
    lines[0] = json.dumps(first)
    (mt / "judgements.jsonl").write_text("\n".join(lines))
    with pytest.raises(DefectError) as exc:
        load_routellm_mt_bench(mt)
    bad = exc.value.report.items["malformed_row"]
    assert [b.where for b in bad] == ["judgements.jsonl line 1"]
    d = load_routellm_mt_bench(mt, on_defect="drop")
    # the other turn's judgement still scores that (question, model)
    i = d.query_ids.index(f"mt_bench:{first['question_id']}")
    assert not np.isnan(d.scores[i, d.model_index(first["model"])])
    first["score"] = 11
    lines[0] = json.dumps(first)
    (mt / "judgements.jsonl").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"judge score that is outside \[1, 10\]"):
        load_routellm_mt_bench(mt)


def test_mt_bench_missing_file(tmp_path: Path) -> None:
    (tmp_path / "question.jsonl").write_text("")
    with pytest.raises(DataError, match=r"judgements\.jsonl"):
        load_routellm_mt_bench(tmp_path)


def test_routellm_pool_prices_from_litellm_table(rl: Path, csv_slice, tmp_path: Path) -> None:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    pool = routellm_pool()
    strong = litellm.model_cost["gpt-4-1106-preview"]
    weak = litellm.model_cost["anyscale/mistralai/Mixtral-8x7B-Instruct-v0.1"]
    assert pool[ROUTELLM_STRONG].input_price == pytest.approx(strong["input_cost_per_token"] * 1e6)
    assert pool[ROUTELLM_WEAK].output_price == pytest.approx(weak["output_cost_per_token"] * 1e6)
    path = csv_slice(
        rl / "gsm8k" / "gsm8k_responses.csv", tmp_path / "gsm8k_responses.csv", range(20)
    )
    d = load_routellm_csv(path, pool=pool)
    assert d.meta["cost_source"] == "pool"
    assert d.costs is not None and d.responses is not None
    j = d.model_index(ROUTELLM_STRONG)
    q, r = d.queries[0], d.responses[0, j]
    expected = (
        np.ceil(len(q) / 4) * pool[ROUTELLM_STRONG].input_price
        + np.ceil(len(r) / 4) * pool[ROUTELLM_STRONG].output_price
    ) / 1e6
    assert d.costs[0, j] == pytest.approx(expected)
    # the strong model costs more on every query
    assert (d.costs[:, j] > d.costs[:, d.model_index(ROUTELLM_WEAK)]).all()


def test_empty_prompt_is_an_empty_query(rl: Path, csv_slice, tmp_path: Path) -> None:
    path = csv_slice(rl / "mmlu" / "responses" / "mmlu_anatomy.csv", tmp_path / "a.csv", range(6))
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.loc[2, "prompt"] = "  "
    raw.to_csv(path, index=False)
    with pytest.raises(DefectError) as exc:
        load_routellm_csv(path)
    [defect] = exc.value.report.items["malformed_row"]
    assert (defect.id, defect.where, defect.detail) == ("a:2", "a.csv row 3", "empty query")

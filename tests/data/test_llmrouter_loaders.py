"""LLMRouter formats: dcrouter JSON + pool + query files, routing JSONL, the NQ file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrouter_core.data import (
    DefectError,
    dedupe_train_test,
    load_data,
    load_dcrouter,
    load_llmrouter_nq,
    load_llmrouter_routing,
)
from llmrouter_core.errors import DataError
from llmrouter_core.pool import DEFAULT_OUTPUT_TOKENS, Pool


@pytest.fixture
def lr(shared_data: Path) -> Path:
    return shared_data / "llmrouter"


@pytest.fixture
def dc(lr: Path, json_slice, tmp_path: Path) -> dict[str, Any]:
    """60 real test questions (20 of them also in train) and 130+ real train questions."""
    test_items = json.loads((lr / "dcrouter_test.json").read_text())
    train_items = json.loads((lr / "dcrouter_train.json").read_text())
    train_q = {it["question"] for it in train_items}
    # 40 test questions, then 20 of those that also occur in the train file
    repeated = [i for i, it in enumerate(test_items) if i >= 40 and it["question"] in train_q]
    keep_test = set(range(40)) | set(repeated[:20])
    test_q = {test_items[i]["question"] for i in keep_test}
    overlap = [i for i, it in enumerate(train_items) if it["question"] in test_q]
    keep_train = set(range(130)) | set(overlap)
    folder = tmp_path / "llmrouter"
    test = json_slice(
        lr / "dcrouter_test.json", folder / "dcrouter_test.json", lambda i, _: i in keep_test
    )
    train = json_slice(
        lr / "dcrouter_train.json", folder / "dcrouter_train.json", lambda i, _: i in keep_train
    )
    wanted = set(test_q) | {train_items[i]["question"] for i in keep_train}
    queries = [
        json_slice(
            lr / f"default_query_{s}.jsonl",
            folder / f"default_query_{s}.jsonl",
            lambda i, obj: obj["query"] in wanted,
        )
        for s in ("train", "test")
    ]
    pool_file = folder / "default_llm.json"
    pool_file.write_text((lr / "default_llm.json").read_text())
    n_overlap = sum(1 for i in keep_train if train_items[i]["question"] in test_q)
    assert n_overlap >= 20
    return {
        "train": train,
        "test": test,
        "queries": queries,
        "pool": pool_file,
        "n_overlap": n_overlap,
        "n_train": len(keep_train),
        "test_items": [test_items[i] for i in sorted(keep_test)],
    }


def test_dcrouter_scores_tasks_and_pool_costs(dc: dict[str, Any]) -> None:
    d = load_dcrouter(dc["test"], queries=dc["queries"], pool=dc["pool"])
    items = dc["test_items"]
    assert d.n_queries == 60 and d.n_models == 9
    assert d.query_ids[:2] == ["dcrouter_test:0", "dcrouter_test:1"]  # position in the file
    assert d.splits == ["test"] * 60
    for i in (0, 37):
        for m, s in items[i]["scores"].items():
            assert d.scores[i, d.model_index(m)] == s
    task_of = {}
    for f in dc["queries"]:
        for line in f.read_text().splitlines():
            obj = json.loads(line)
            task_of[obj["query"]] = obj["task_name"]
    assert d.tasks == [task_of[it["question"]] for it in items]
    # cost = (ceil(len/4) * input price + DEFAULT_OUTPUT_TOKENS * output price) / 1e6
    pool = Pool.from_file(dc["pool"])
    q = items[5]["question"]
    m = "llama-3.1-nemotron-51b-instruct"
    spec = pool[m]
    expected = (
        math.ceil(len(q) / 4) * spec.input_price + DEFAULT_OUTPUT_TOKENS * spec.output_price
    ) / 1e6  # type: ignore[operator]
    assert d.costs is not None
    assert d.costs[5, d.model_index(m)] == pytest.approx(expected)
    assert d.meta["cost_source"] == "pool"


def test_dcrouter_without_pool_has_no_costs(dc: dict[str, Any]) -> None:
    d = load_dcrouter(dc["test"])
    assert d.costs is None and d.tasks is None


def test_train_test_overlap_is_a_defect(dc: dict[str, Any]) -> None:
    files = [dc["train"], dc["test"]]
    with pytest.raises(DefectError) as exc:
        load_dcrouter(files)
    assert len(exc.value.report.ids("train_test_overlap")) == dc["n_overlap"]
    d = load_dcrouter(files, on_defect="drop")
    assert d.meta["train_test_overlap_removed"] == dc["n_overlap"]
    assert d.split("train").n_queries == dc["n_train"] - dc["n_overlap"]
    assert d.split("test").n_queries == 60
    test_texts = set(d.split("test").queries)
    assert not test_texts & set(d.split("train").queries)


def test_dedupe_train_test_function(dc: dict[str, Any]) -> None:
    kept = load_dcrouter([dc["train"], dc["test"]], on_defect="keep")
    assert kept.split("train").n_queries == dc["n_train"]
    honest = dedupe_train_test(kept)
    assert honest.meta["train_test_overlap_removed"] == dc["n_overlap"]
    assert honest.split("train").n_queries == dc["n_train"] - dc["n_overlap"]
    assert honest.split("test").query_ids == kept.split("test").query_ids


def test_full_dcrouter_has_69_overlaps(lr: Path) -> None:
    d = load_dcrouter(
        [lr / "dcrouter_train.json", lr / "dcrouter_test.json"],
        pool=lr / "default_llm.json",
        on_defect="drop",
    )
    assert d.meta["train_test_overlap_removed"] == 69
    test = d.split("test")
    assert test.n_queries == 450
    # the data README / PEERS: nemotron-51b is the best single model at about 0.605
    best = test.models[int(np.argmax(test.mean_scores()))]
    assert best == "llama-3.1-nemotron-51b-instruct"
    assert test.mean_scores().max() == pytest.approx(0.605, abs=0.001)


def test_truncated_json_is_one_clear_error(lr: Path, tmp_path: Path) -> None:
    text = (lr / "dcrouter_test.json").read_text()
    cut = tmp_path / "dcrouter_test.json"
    cut.write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"cannot parse JSON file .*truncated"):
        load_dcrouter(cut)


def test_malformed_dcrouter_items(lr: Path, tmp_path: Path) -> None:
    items = json.loads((lr / "dcrouter_test.json").read_text())[:10]
    items[3] = {"question": items[3]["question"]}  # no scores
    items[6]["scores"] = {k: v for k, v in list(items[6]["scores"].items())[:5]}  # 4 models gone
    p = tmp_path / "dc_test.json"
    p.write_text(json.dumps(items))
    with pytest.raises(DefectError) as exc:
        load_dcrouter(p)
    rep = exc.value.report
    assert rep.ids("malformed_row") == ["dc_test:3"]
    assert rep.ids("incomplete_query") == ["dc_test:6"]
    d = load_dcrouter(p, on_defect="drop")
    assert d.query_ids == [f"dc_test:{i}" for i in range(10) if i not in (3, 6)]


def test_load_data_finds_pool_and_queries_next_to_dcrouter(dc: dict[str, Any]) -> None:
    d = load_data(dc["test"])
    assert d.meta["format"] == "dcrouter"
    assert d.costs is not None and d.tasks is not None and all(d.tasks)
    folder = load_data(dc["test"].parent, on_defect="drop")
    assert folder.meta["train_test_overlap_removed"] == dc["n_overlap"]


@pytest.fixture
def nq(lr: Path, json_slice, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    path = json_slice(
        lr / "router_train_data_nq.json",
        tmp_path / "router_train_data_nq.json",
        lambda i, _: i < 40,
    )
    return path, json.loads(path.read_text())


def test_nq_aligns_models_and_converts_costs(nq: tuple[Path, list[dict[str, Any]]]) -> None:
    path, items = nq
    orders = {tuple(it["llm_name_list"]) for it in items}
    assert len(orders) > 1  # the model order varies per query in the real file
    d = load_llmrouter_nq(path)
    assert d.n_queries == 40 and d.n_models == 6
    assert d.splits == ["train"] * 40 and d.tasks == ["nq"] * 40
    assert d.costs is not None and d.responses is not None
    for i, it in enumerate(items):
        for name, perf, cost, resp in zip(
            it["llm_name_list"], it["perf_list"], it["cost_list"], it["response_list"], strict=True
        ):
            j = d.model_index(name)
            assert d.scores[i, j] == perf
            assert d.costs[i, j] == pytest.approx(cost * 1e-6)
            assert d.responses[i, j] == resp
    assert d.meta["cost_source"] == "measured"


def test_nq_malformed_lists(nq: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    _, items = nq
    items[2]["perf_list"] = items[2]["perf_list"][:-1]  # lengths disagree
    p = tmp_path / "nq_train.json"
    p.write_text(json.dumps(items))
    with pytest.raises(DefectError) as exc:
        load_llmrouter_nq(p)
    assert exc.value.report.ids("malformed_row") == [str(items[2]["q_id"])]
    assert load_llmrouter_nq(p, on_defect="drop").n_queries == 39


def _routing_jsonl(items: list[dict[str, Any]], path: Path, split_ids: bool = False) -> Path:
    """Write real NQ outcomes in LLMRouter's routing-data format (one line per query, model).

    Token counts are the len/4 estimate of the real texts (the NQ file records none).
    """
    lines = []
    for k, it in enumerate(items):
        for name, perf, resp in zip(
            it["llm_name_list"], it["perf_list"], it["response_list"], strict=True
        ):
            lines.append(
                {
                    "task_name": "natural_qa",
                    "query": it["query"],
                    "ground_truth": it["gt"][0],
                    "metric": "f1_score",
                    "choices": None,
                    "task_id": None,
                    "model_name": name.split("/")[-1],
                    "response": resp,
                    "token_num": math.ceil(len(it["query"]) / 4) + math.ceil(len(resp) / 4),
                    "input_tokens": math.ceil(len(it["query"]) / 4),
                    "output_tokens": math.ceil(len(resp) / 4),
                    "response_time": 1.5,
                    "api_key_used": "",
                    "performance": perf,
                    "embedding_id": k,
                    "user_id": None,
                    "fig_id": None,
                }
            )
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_routing_jsonl_with_pool_costs(
    nq: tuple[Path, list[dict[str, Any]]], lr: Path, tmp_path: Path
) -> None:
    _, items = nq
    path = _routing_jsonl(items[:20], tmp_path / "default_routing_train_data.jsonl")
    assert load_data(path).meta["format"] == "llmrouter-routing"
    pool = Pool.from_file(lr / "default_llm.json")
    in_pool = [m.split("/")[-1] for m in items[0]["llm_name_list"] if m.split("/")[-1] in pool]
    with pytest.raises(DefectError) as exc:  # two NQ models are not in LLMRouter's pool
        load_llmrouter_routing(path, pool=pool)
    assert set(exc.value.report.ids("unknown_model")) == {
        m.split("/")[-1] for m in items[0]["llm_name_list"]
    } - set(in_pool)
    d = load_llmrouter_routing(path, pool=pool, on_defect="drop")
    assert sorted(d.models) == sorted(in_pool)
    assert d.query_ids == [str(k) for k in range(20)]
    assert d.splits == ["train"] * 20 and d.tasks == ["natural_qa"] * 20
    m = in_pool[0]
    j = d.model_index(m)
    it = items[0]
    k = [n.split("/")[-1] for n in it["llm_name_list"]].index(m)
    assert d.scores[0, j] == it["perf_list"][k]
    assert d.input_tokens is not None and d.output_tokens is not None
    spec = pool[m]
    expected = (
        d.input_tokens[0, j] * spec.input_price + d.output_tokens[0, j] * spec.output_price  # type: ignore[operator]
    ) / 1e6
    assert d.costs is not None and d.costs[0, j] == pytest.approx(expected)
    assert d.latency_s is not None and d.latency_s[0, j] == 1.5


def test_routing_jsonl_missing_fields(tmp_path: Path) -> None:
    p = tmp_path / "routing.jsonl"
    p.write_text(json.dumps({"query": "q", "model_name": "m"}) + "\n")
    with pytest.raises(DataError, match="missing required fields: performance"):
        load_llmrouter_routing(p)


def test_empty_question_and_bad_nq_cost_are_defects(
    lr: Path, nq: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    items = json.loads((lr / "dcrouter_test.json").read_text())[:6]
    items[4]["question"] = " "
    p = tmp_path / "dc_test.json"
    p.write_text(json.dumps(items))
    with pytest.raises(DefectError) as exc:
        load_dcrouter(p)
    [defect] = exc.value.report.items["malformed_row"]
    assert (defect.id, defect.where, defect.detail) == (
        "dc_test:4",
        "dc_test.json item 4",
        "empty query",
    )
    _, rows = nq
    rows[5]["cost_list"][1] = float("inf")  # json.dumps writes Infinity, json.loads reads it
    q = tmp_path / "nq_train.json"
    q.write_text(json.dumps(rows))
    with pytest.raises(DefectError) as exc:
        load_llmrouter_nq(q)
    [bad] = exc.value.report.items["invalid_cost"]
    assert (bad.id, bad.where) == (str(rows[5]["q_id"]), "nq_train.json item 5")
    assert f"{rows[5]['llm_name_list'][1]} has inf" in bad.detail
    assert load_llmrouter_nq(q, on_defect="drop").n_queries == 39


def test_routing_jsonl_with_odd_embedding_ids(tmp_path: Path) -> None:
    """Found by the fuzz: an ``embedding_id`` of ``Infinity`` crashed with OverflowError."""
    rows = [
        {"query": "What is 2+2?", "model_name": "small", "performance": 1, "embedding_id": 3.0},
        {"query": "What is 2+2?", "model_name": "large", "performance": 1, "embedding_id": 3},
        {
            "query": "Name a prime.",
            "model_name": "small",
            "performance": 0,
            "embedding_id": math.inf,
        },
        {
            "query": "Name a prime.",
            "model_name": "large",
            "performance": 1,
            "embedding_id": math.inf,
        },
    ]
    path = tmp_path / "routing_train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = load_llmrouter_routing(path)
    assert d.query_ids == ["3", "inf"]
    assert d.scores.tolist() == [[1.0, 1.0], [0.0, 1.0]]

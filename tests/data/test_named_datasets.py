"""Named datasets under LLMROUTER_DATA_DIR, downloads (never touching the network), load_data."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrouter_core.data import (
    DATASETS,
    defect_log_level,
    detect_format,
    download_dataset,
    load_data,
    load_dataset,
    load_routerbench,
    resolve_data_dir,
    save_canonical,
)
from llmrouter_core.data import datasets as datasets_module
from llmrouter_core.errors import DataError


@pytest.fixture
def mini_dir(shared_data: Path, csv_slice, json_slice, tmp_path: Path) -> Path:
    """A data folder in the published layout holding small slices of every dataset."""
    root = tmp_path / "data"
    for rel in DATASETS["routerbench"].files:
        # the first 25 rows plus ARC's defective ids
        csv_slice(
            shared_data / rel,
            root / rel,
            where=lambda df: (
                (df.index < 25)
                | df["sample_id"].isin({"arc-challenge.val.136", "arc-challenge.val.172"})
            ),
        )
    lr_src, lr_dst = shared_data / "llmrouter", root / "llmrouter"
    test_items = json.loads((lr_src / "dcrouter_test.json").read_text())
    test_q = {it["question"] for it in test_items}
    train_q = {it["question"] for it in json.loads((lr_src / "dcrouter_train.json").read_text())}
    # 60 test questions plus the (real) ones that also occur in the train file
    keep = {i for i, it in enumerate(test_items) if i < 60 or it["question"] in train_q}
    json_slice(lr_src / "dcrouter_test.json", lr_dst / "dcrouter_test.json", lambda i, _: i in keep)
    kept_test = {test_items[i]["question"] for i in keep}
    json_slice(
        lr_src / "dcrouter_train.json",
        lr_dst / "dcrouter_train.json",
        lambda i, it: i < 100 or it["question"] in kept_test,
    )
    (lr_dst / "default_llm.json").write_text((lr_src / "default_llm.json").read_text())
    json_slice(
        lr_src / "default_query_test.jsonl",
        lr_dst / "default_query_test.jsonl",
        lambda i, o: o["query"] in test_q,
    )
    json_slice(
        lr_src / "router_train_data_nq.json",
        lr_dst / "router_train_data_nq.json",
        lambda i, _: i < 30,
    )
    rl_src, rl_dst = shared_data / "routellm", root / "routellm"
    for rel in DATASETS["routellm-mmlu"].files:
        csv_slice(shared_data / rel, root / rel, range(3))
    csv_slice(
        rl_src / "gsm8k" / "gsm8k_responses.csv",
        rl_dst / "gsm8k" / "gsm8k_responses.csv",
        range(30),
    )
    for name in ("question.jsonl", "judgements.jsonl"):
        json_slice(
            rl_src / "mt_bench" / name,
            rl_dst / "mt_bench" / name,
            lambda i, o: o["question_id"] in {81, 82, 83, 101},
        )
    return root


def test_every_named_dataset_resolves(mini_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMROUTER_DATA_DIR", str(mini_dir))
    assert resolve_data_dir() == mini_dir
    shapes = {}
    for name in DATASETS:
        d = load_dataset(name, pool=False if name.startswith("routellm") else None)
        assert d.meta["dataset"] == name
        assert "defects" in d.meta
        shapes[name] = (d.n_queries, d.n_models)
    assert shapes["routerbench"][1] == 11
    assert shapes["llmrouter"][1] == 9
    assert shapes["llmrouter-nq"] == (30, 6)
    assert shapes["routellm-mmlu"] == (57 * 3, 2)
    assert shapes["routellm-gsm8k"][1] == 2
    assert shapes["routellm-mt-bench"] == (4, 2)


def test_routerbench_split_after_whole_load(mini_dir: Path) -> None:
    whole = load_dataset("routerbench", data_dir=mini_dir)
    test = load_dataset("routerbench", data_dir=mini_dir, split="test")
    assert test.splits is not None and set(test.splits) == {"test"}
    assert test.query_ids == whole.split("test").query_ids
    assert test.meta["split"] == "test"
    # the duplicate id straddling train and test was seen and reported
    assert any("different splits" in n for n in test.meta["defects"]["notes"])
    assert "arc-challenge.val.136" not in whole.query_ids


def test_llmrouter_honest_split_and_costs(mini_dir: Path) -> None:
    d = load_dataset("llmrouter", data_dir=mini_dir)
    train_items = json.loads((mini_dir / "llmrouter" / "dcrouter_train.json").read_text())
    test_items = json.loads((mini_dir / "llmrouter" / "dcrouter_test.json").read_text())
    test_q = {it["question"] for it in test_items}
    n_overlap = sum(1 for it in train_items if it["question"] in test_q)
    assert n_overlap > 0
    assert d.meta["train_test_overlap_removed"] == n_overlap
    assert d.split("train").n_queries == len(train_items) - n_overlap
    assert d.costs is not None and d.meta["cost_source"] == "pool"
    assert d.tasks is not None and all(
        t for t, s in zip(d.tasks, d.splits or [], strict=True) if s == "test"
    )
    train_only = load_dataset("llmrouter", data_dir=mini_dir, split="train")
    assert not set(train_only.queries) & test_q
    leaky = load_dataset("llmrouter", data_dir=mini_dir, on_defect="keep", split="train")
    assert leaky.n_queries == len(train_items)


def test_routellm_named_dataset_has_costs_by_default(mini_dir: Path) -> None:
    d = load_dataset("routellm-gsm8k", data_dir=mini_dir)
    assert d.costs is not None and d.meta["cost_source"] == "pool"
    assert np.all(d.costs > 0)


def test_split_errors(mini_dir: Path) -> None:
    with pytest.raises(DataError, match="has no splits"):
        load_dataset("routellm-mt-bench", data_dir=mini_dir, split="test", pool=False)
    with pytest.raises(DataError, match="no queries in split 'val'"):
        load_dataset("routerbench", data_dir=mini_dir, split="val")


def test_unknown_name_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'routerbench2'; known: llmrouter"):
        load_dataset("routerbench2", data_dir=tmp_path)
    with pytest.raises(DataError) as exc:
        load_dataset("routellm-gsm8k", data_dir=tmp_path)
    msg = str(exc.value)
    assert "download=True" in msg and "LLMROUTER_DATA_DIR" in msg and str(tmp_path) in msg


def _no_network(url: str, timeout: float) -> Any:
    raise OSError(f"network unreachable (test): {url}")


def test_download_disabled_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(datasets_module, "_urlopen", lambda url, t: calls.append(url))
    monkeypatch.setenv("LLMROUTER_OFFLINE", "1")
    with pytest.raises(DataError, match="downloads are disabled"):
        load_dataset("llmrouter-nq", data_dir=tmp_path, download=True)
    assert calls == []


def test_download_error_is_clear_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMROUTER_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets_module, "_urlopen", _no_network)
    with pytest.raises(DataError, match=r"could not download https://raw\.githubusercontent\.com/"):
        load_dataset("routellm-mt-bench", data_dir=tmp_path, download=True)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_download_writes_files_then_loads(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in for the publisher's server serving the real file bytes."""
    monkeypatch.delenv("LLMROUTER_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    served = {url: shared_data / rel for url, rel in DATASETS["llmrouter-nq"].downloads}
    fetched: list[str] = []

    def serve(url: str, timeout: float) -> io.BytesIO:
        fetched.append(url)
        return io.BytesIO(served[url].read_bytes())

    monkeypatch.setattr(datasets_module, "_urlopen", serve)
    d = load_dataset("llmrouter-nq", data_dir=tmp_path, download=True)
    assert fetched == list(served)
    assert d.n_queries == 500
    # present now: no second download
    load_dataset("llmrouter-nq", data_dir=tmp_path, download=True)
    assert len(fetched) == 1


def test_routerbench_download_needs_trust_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(datasets_module, "_urlopen", lambda url, t: calls.append(url))
    with pytest.raises(DataError, match="trust_pickle=True"):
        load_dataset("routerbench", data_dir=tmp_path, download=True)
    with pytest.raises(DataError, match="trust_pickle=True"):
        download_dataset("routerbench", data_dir=tmp_path)
    assert calls == []


def test_full_routerbench_test_split(shared_data: Path) -> None:
    d = load_dataset("routerbench", data_dir=shared_data, split="test")
    alone = load_routerbench(
        sorted((shared_data / "routerbench").glob("*_test.csv")), on_defect="drop"
    )
    assert d.query_ids == alone.query_ids
    assert (d.n_queries, d.n_models) == (alone.n_queries, 11)


def test_load_dataset_accepts_a_path(shared_data: Path, tmp_path: Path) -> None:
    d = load_dataset(shared_data / "llmrouter" / "dcrouter_test.json")
    assert d.meta["format"] == "dcrouter" and d.n_queries == 450


@pytest.mark.parametrize(
    ("rel", "kind"),
    [
        ("routerbench", "routerbench"),
        ("routerbench/mbpp_test.csv", "routerbench"),
        ("llmrouter", "dcrouter"),
        ("llmrouter/dcrouter_train.json", "dcrouter"),
        ("llmrouter/router_train_data_nq.json", "llmrouter-nq"),
        ("routellm/mmlu", "routellm"),
        ("routellm/mmlu/responses/mmlu_anatomy.csv", "routellm"),
        ("routellm/gsm8k/gsm8k_responses.csv", "routellm"),
        ("routellm/mt_bench", "routellm-mt-bench"),
        ("routellm/mt_bench/question.jsonl", "routellm-mt-bench"),
    ],
)
def test_detect_format_on_real_files(shared_data: Path, rel: str, kind: str) -> None:
    assert detect_format(shared_data / rel) == kind


def test_detect_canonical_files(shared_data: Path, csv_slice, tmp_path: Path) -> None:
    src = csv_slice(
        shared_data / "routerbench" / "mbpp_test.csv", tmp_path / "mbpp_test.csv", range(5)
    )
    data = load_routerbench(src)
    for suffix in (".csv", ".jsonl", ".parquet"):
        path = save_canonical(data, tmp_path / f"canon{suffix}")
        assert detect_format(path) == "canonical"
        assert load_data(path).query_ids == data.query_ids


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("README.md", "unknown routing-data format"),
        ("llmrouter/default_llm.json", "model pool file"),
        ("llmrouter/default_query_test.jsonl", "query file"),
        ("routellm/gsm8k/contaminated_prompts.jsonl", "unknown routing-data format"),
        ("routellm", "no recognisable data files"),
    ],
)
def test_unknown_formats_get_one_clear_error(shared_data: Path, rel: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_data(shared_data / rel)


def test_unknown_csv_header(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="unknown routing-data format; supported: a canonical"):
        load_data(p)
    with pytest.raises(DataError, match="not found"):
        load_data(tmp_path / "missing.csv")


@pytest.mark.parametrize("arg", ["runs/[v2]/scores.csv", "scores.csv", "data.JSONL", "a/b"])
def test_a_missing_path_is_file_not_found(tmp_path: Path, arg: str) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset(arg, data_dir=tmp_path)
    assert str(exc.value) == f"file not found: {arg}"
    with pytest.raises(DataError, match=r"^file not found: "):
        load_dataset(tmp_path / "nope", data_dir=tmp_path)  # a Path is always a path


def test_named_dataset_report_is_logged_at_info_not_as_a_warning(
    mini_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A named dataset's defects are known and documented: kept in meta, logged at INFO."""
    with caplog.at_level(logging.DEBUG, logger="llmrouter_core"):
        d = load_dataset("routerbench", data_dir=mini_dir)
    assert d.meta["defects"]["counts"]["duplicate_id"] >= 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    reports = [r for r in caplog.records if "rows read" in r.getMessage()]
    assert [r.levelno for r in reports] == [logging.INFO]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="llmrouter_core"), defect_log_level(logging.DEBUG):
        load_dataset("routerbench", data_dir=mini_dir)
    reports = [r for r in caplog.records if "rows read" in r.getMessage()]
    assert [r.levelno for r in reports] == [logging.DEBUG]

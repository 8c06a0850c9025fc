"""The canonical long table: round trips, validation, defect handling (on real data slices)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrouter_core.data import (
    DefectError,
    RoutingData,
    load_canonical,
    load_routerbench,
    save_canonical,
)
from llmrouter_core.errors import DataError
from llmrouter_core.pool import ModelSpec, Pool


@pytest.fixture
def real(shared_data: Path, csv_slice, tmp_path: Path) -> RoutingData:
    """40 real RouterBench test queries (scores, costs, responses, task, split)."""
    src = shared_data / "routerbench" / "mbpp_test.csv"
    return load_routerbench(csv_slice(src, tmp_path / "src" / "mbpp_test.csv", rows=range(40)))


@pytest.fixture
def real_csv(real: RoutingData, tmp_path: Path) -> Path:
    return save_canonical(real, tmp_path / "scores.csv")


def _assert_same(a: RoutingData, b: RoutingData) -> None:
    assert a.query_ids == b.query_ids
    assert a.queries == b.queries
    assert a.models == b.models
    np.testing.assert_array_equal(a.scores, b.scores)
    assert (a.costs is None) == (b.costs is None)
    if a.costs is not None:
        np.testing.assert_array_equal(a.costs, b.costs)
    assert a.tasks == b.tasks
    assert a.splits == b.splits
    assert (a.responses is None) == (b.responses is None)
    if a.responses is not None:
        assert a.responses.tolist() == b.responses.tolist()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_round_trip_is_exact(real: RoutingData, tmp_path: Path, suffix: str) -> None:
    path = save_canonical(real, tmp_path / f"scores{suffix}")
    back = load_canonical(path)
    _assert_same(real, back)
    assert back.meta["defects"]["counts"] == {}
    assert back.meta["format"] == "canonical"
    assert back.meta["cost_source"] == "measured"


def test_round_trip_keeps_tokens_and_latency(real: RoutingData, tmp_path: Path) -> None:
    # token counts estimated from the real texts; latency from the real costs (any numbers)
    lengths = np.array([[len(q) // 4 for _ in real.models] for q in real.queries], dtype=float)
    assert real.costs is not None
    data = RoutingData(
        real.query_ids,
        real.queries,
        real.models,
        real.scores,
        costs=real.costs,
        input_tokens=lengths,
        output_tokens=lengths + 1,
        latency_s=real.costs * 100,
    )
    for suffix in (".csv", ".jsonl", ".parquet"):
        back = load_canonical(save_canonical(data, tmp_path / f"t{suffix}"))
        for attr in ("input_tokens", "output_tokens", "latency_s"):
            np.testing.assert_array_equal(getattr(back, attr), getattr(data, attr))


def test_missing_required_columns_named_in_one_error(real_csv: Path, tmp_path: Path) -> None:
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    bad = tmp_path / "bad.csv"
    df.drop(columns=["score", "model"]).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"missing required columns: model, score"):
        load_canonical(bad)


def test_wrong_columns_in_jsonl(real: RoutingData, tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": q, "prompt": t, "model_name": real.models[0], "performance": 1.0})
        for q, t in zip(real.query_ids[:3], real.queries[:3], strict=True)
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="missing required columns: query_id, query, model, score"):
        load_canonical(bad)


@pytest.mark.parametrize("value", ["1.5", "-0.2", "85", "high"])
def test_bad_scores_raise_naming_the_rows(real_csv: Path, tmp_path: Path, value: str) -> None:
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    df.loc[[3, 17], "score"] = value
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(DataError) as exc:
        load_canonical(bad, on_defect="drop")  # not a droppable defect: the scale is wrong
    msg = str(exc.value)
    assert "2 rows have a score" in msg
    assert "bad.csv row 4" in msg and "bad.csv row 18" in msg
    assert df.at[3, "query_id"] in msg


@pytest.mark.parametrize(
    ("value", "shown"), [("-0.001", "has -0.001"), ("inf", "has inf"), ("", "has none")]
)
def test_invalid_cost_is_a_defect_with_file_and_row(
    real_csv: Path, tmp_path: Path, value: str, shown: str
) -> None:
    """A cost that is negative, inf, or missing while the others are recorded (and no pool
    prices it) is a defect of its query, found by the loader, not later inside fit."""
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    df.loc[5, "cost"] = value
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    qid, model = df.at[5, "query_id"], df.at[5, "model"]
    with pytest.raises(DefectError) as exc:
        load_canonical(bad)
    [defect] = exc.value.report.items["invalid_cost"]
    assert (defect.id, defect.where) == (qid, "bad.csv row 6")
    assert f"{model} {shown}" in defect.detail
    dropped = load_canonical(bad, on_defect="drop")
    assert qid not in dropped.query_ids
    assert dropped.n_queries == df["query_id"].nunique() - 1
    assert np.isfinite(dropped.costs).all() and (dropped.costs >= 0).all()
    assert dropped.meta["defects"]["counts"] == {"invalid_cost": 1}
    kept = load_canonical(bad, on_defect="keep")  # kept, the cost unknown
    i, j = kept.query_ids.index(qid), kept.models.index(model)
    assert np.isnan(kept.costs[i, j])


def test_missing_cost_with_a_pool_is_priced_not_a_defect(real_csv: Path, tmp_path: Path) -> None:
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    df.loc[5, "cost"] = ""
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    pool = Pool(ModelSpec(m, input_price=1.0, output_price=2.0) for m in df["model"].unique())
    data = load_canonical(bad, pool=pool)
    assert data.meta["defects"]["counts"] == {}
    assert data.meta["cost_source"] == "measured+pool"
    assert np.isfinite(data.costs).all()


def test_non_numeric_cost_still_raises(real_csv: Path, tmp_path: Path) -> None:
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    df.loc[5, "cost"] = "cheap"
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"1 rows have a cost that is not numeric.*bad.csv row 6"):
        load_canonical(bad, on_defect="drop")


def test_infinite_token_count_raises(real_csv: Path, tmp_path: Path) -> None:
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    df["input_tokens"] = "100"
    df.loc[2, "input_tokens"] = "inf"
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"1 rows have a input_tokens that is not finite or "):
        load_canonical(bad, on_defect="drop")


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_query_text_is_named_as_such(real_csv: Path, tmp_path: Path, text: str) -> None:
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    df.loc[df["query_id"] == df.at[0, "query_id"], "query"] = text
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(DefectError) as exc:
        load_canonical(bad)
    details = {d.detail for d in exc.value.report.items["malformed_row"]}
    assert details == {"empty query"}
    assert exc.value.report.items["malformed_row"][0].where == "bad.csv row 1"


def test_truncated_jsonl_line_is_a_malformed_row(real: RoutingData, tmp_path: Path) -> None:
    path = save_canonical(real, tmp_path / "scores.jsonl")
    text = path.read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) - 40])  # the last line loses its end
    n_lines = len(text.splitlines())
    with pytest.raises(DefectError) as exc:
        load_canonical(cut)
    report = exc.value.report
    assert report.counts["malformed_row"] == 1
    assert report.items["malformed_row"][0].where == f"cut.jsonl line {n_lines}"
    assert "bad JSON" in str(exc.value)
    # the query that lost its last record is incomplete
    assert report.ids("incomplete_query") == [real.query_ids[-1]]
    dropped = load_canonical(cut, on_defect="drop")
    assert dropped.query_ids == real.query_ids[:-1]
    assert dropped.meta["defects"]["dropped_queries"] == [real.query_ids[-1]]


def test_truncated_csv_is_one_clear_error(real_csv: Path, tmp_path: Path) -> None:
    text = real_csv.read_text()
    # cut inside a quoted response: the file ends in an open quote
    cut_at = text.rindex('"', 0, len(text) - 10)
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: cut_at + 1] + "never closed")
    with pytest.raises(DataError, match="cannot parse CSV file"):
        load_canonical(cut)


def test_defects_error_drop_keep(real_csv: Path, tmp_path: Path) -> None:
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    models = list(dict.fromkeys(df["model"]))
    q = list(dict.fromkeys(df["query_id"]))
    rows = df.copy()
    # q[1]: one score emptied; q[2]: one record removed; q[3]: a record repeated identically;
    # q[4]: a record repeated with another score (conflict)
    i1 = rows.index[(rows.query_id == q[1]) & (rows.model == models[2])][0]
    rows.loc[i1, "score"] = ""
    i2 = rows.index[(rows.query_id == q[2]) & (rows.model == models[5])][0]
    rows = rows.drop(index=i2)
    i3 = rows.index[(rows.query_id == q[3]) & (rows.model == models[0])][0]
    i4 = rows.index[(rows.query_id == q[4]) & (rows.model == models[1])][0]
    conflict = rows.loc[[i4]].copy()
    conflict["score"] = "0.0" if float(rows.at[i4, "score"]) == 1.0 else "1.0"
    rows = pd.concat([rows, rows.loc[[i3]], conflict], ignore_index=True)
    path = tmp_path / "defects.csv"
    rows.to_csv(path, index=False)

    with pytest.raises(DefectError) as exc:
        load_canonical(path)
    report = exc.value.report
    assert report.ids("missing_score") == [q[1]]
    assert set(report.ids("incomplete_query")) == {q[2], q[4]}
    assert sorted(report.ids("duplicate_id")) == sorted(
        [f"{q[3]} | {models[0]}", f"{q[4]} | {models[1]}"]
    )
    msg = str(exc.value)
    assert "missing_score 1" in msg and q[1] in msg and "on_defect='drop'" in msg

    dropped = load_canonical(path, on_defect="drop")
    assert dropped.query_ids == [x for x in q if x not in {q[1], q[2], q[4]}]
    rep = dropped.meta["defects"]
    assert sorted(rep["dropped_queries"]) == sorted([q[1], q[2], q[4]])
    # 11 + 10 + 11 records of the three dropped queries (q[4] had one extra conflicting
    # copy, both copies dropped) and the redundant identical copy of q[3]
    n_models = len(models)
    assert rep["dropped_rows"] == n_models + (n_models - 1) + (n_models + 1) + 1
    json.dumps(rep)  # JSON-safe

    kept = load_canonical(path, on_defect="keep")
    assert kept.query_ids == q
    r1, r2, r4 = kept.query_ids.index(q[1]), kept.query_ids.index(q[2]), kept.query_ids.index(q[4])
    assert np.isnan(kept.scores[r1, models.index(models[2])])
    assert np.isnan(kept.scores[r2, models.index(models[5])])
    assert np.isnan(kept.scores[r4, models.index(models[1])])
    assert np.isnan(kept.scores).sum() == 3


def test_one_id_for_two_texts_is_dropped(real_csv: Path, tmp_path: Path) -> None:
    df = pd.read_csv(real_csv, dtype=str, keep_default_na=False)
    qid = df.at[0, "query_id"]
    df.loc[df.query_id == qid, "query"] = [
        t + (" (edited)" if k == 3 else "")
        for k, t in enumerate(df.loc[df.query_id == qid, "query"])
    ]
    path = tmp_path / "two_texts.csv"
    df.to_csv(path, index=False)
    d = load_canonical(path, on_defect="drop")
    assert qid not in d.query_ids
    items = d.meta["defects"]["items"]["duplicate_id"]
    assert items[0]["id"] == qid and "different query" in items[0]["detail"]


def test_unknown_models_against_pool(real: RoutingData, real_csv: Path) -> None:
    known = real.models[:4]
    pool = Pool([ModelSpec(m, input_price=1.0, output_price=2.0) for m in known])
    with pytest.raises(DefectError) as exc:
        load_canonical(real_csv, pool=pool)
    assert exc.value.report.ids("unknown_model") == real.models[4:]
    d = load_canonical(real_csv, pool=pool, on_defect="drop")
    assert d.models == known
    assert d.query_ids == real.query_ids
    assert d.meta["defects"]["dropped_models"] == real.models[4:]
    assert d.meta["defects"]["dropped_rows"] == len(real.query_ids) * (len(real.models) - 4)
    # measured costs are kept, not replaced by pool prices
    assert real.costs is not None and d.costs is not None
    np.testing.assert_array_equal(d.costs, real.costs[:, :4])


def test_pool_fills_costs_when_the_file_has_none(real: RoutingData, tmp_path: Path) -> None:
    no_cost = RoutingData(real.query_ids, real.queries, real.models, real.scores)
    path = save_canonical(no_cost, tmp_path / "nocost.csv")
    assert load_canonical(path).costs is None
    pool = Pool([ModelSpec(m, input_price=2.0, output_price=4.0) for m in real.models])
    d = load_canonical(path, pool=pool)
    assert d.meta["cost_source"] == "pool"
    assert d.costs is not None
    q0 = real.queries[0]
    expected = (np.ceil(len(q0) / 4) * 2.0 + 256 * 4.0) / 1e6
    assert d.costs[0, 0] == pytest.approx(expected)


def test_unsupported_suffix(real: RoutingData, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unsupported file type"):
        save_canonical(real, tmp_path / "scores.xlsx")
    p = tmp_path / "scores.txt"
    p.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        load_canonical(p)


def test_missing_file_and_bad_on_defect(tmp_path: Path, real_csv: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_canonical(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="on_defect"):
        load_canonical(real_csv, on_defect="ignore")


def test_a_line_that_is_not_utf8_is_a_malformed_row(real: RoutingData, tmp_path: Path) -> None:
    path = save_canonical(real, tmp_path / "scores.jsonl")
    lines = path.read_bytes().split(b"\n")
    lines[12] = lines[12].replace(b'"query_id"', b'"query_\xff"', 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DefectError) as exc:
        load_canonical(path)
    [bad] = exc.value.report.items["malformed_row"]
    assert (bad.where, bad.detail) == ("scores.jsonl line 13", "not valid UTF-8")


def test_csv_that_is_not_utf8_names_the_line(real_csv: Path) -> None:
    data = real_csv.read_bytes()
    at = data.index(b"\n", data.index(b"\n") + 1) + 5  # in the second data row's text
    real_csv.write_bytes(data[:at] + b"\xff" + data[at + 1 :])
    line = data[:at].count(b"\n") + 1  # the line an editor shows (texts span lines)
    with pytest.raises(DataError, match=rf"^{re.escape(str(real_csv))}:{line}: not valid UTF-8$"):
        load_canonical(real_csv)


def test_corrupt_parquet_is_one_data_error(real: RoutingData, tmp_path: Path) -> None:
    path = save_canonical(real, tmp_path / "scores.parquet")
    data = bytearray(path.read_bytes())
    data[183] = 0x80  # found by the fuzz: a string page that is not UTF-8
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"^cannot read Parquet file .*scores.parquet: "):
        load_canonical(path)

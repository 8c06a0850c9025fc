"""RouterBench wide CSVs: slices of the real files with their real defects, pickles, figures."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrouter_core.data import DefectError, load_data, load_routerbench
from llmrouter_core.data._assemble import parse_text_list
from llmrouter_core.errors import DataError

MODELS_11 = 11
# real defective sample ids of RouterBench's ARC-Challenge files
IN_TEST_TWICE = "arc-challenge.val.172"  # both copies in the test file
STRADDLING = "arc-challenge.val.136"  # one copy in test, one in train
IN_TRAIN_TWICE = "arc-challenge.val.174"  # both copies in the train file


@pytest.fixture
def arc(shared_data: Path, csv_slice, tmp_path: Path) -> tuple[Path, Path]:
    """The first 30 rows of each ARC file plus the rows of three defective sample ids."""
    rb = shared_data / "routerbench"
    ids = {IN_TEST_TWICE, STRADDLING, IN_TRAIN_TWICE}

    def pick(df: pd.DataFrame) -> pd.Series:
        return (df.index < 30) | df["sample_id"].isin(ids)

    test = csv_slice(rb / "arc_challenge_test.csv", tmp_path / "arc_challenge_test.csv", where=pick)
    train = csv_slice(
        rb / "arc_challenge_train.csv", tmp_path / "arc_challenge_train.csv", where=pick
    )
    return test, train


def _raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_clean_rows_load_with_all_fields(arc: tuple[Path, Path]) -> None:
    test, _ = arc
    raw = _raw(test)
    d = load_routerbench(test, on_defect="drop")
    assert d.n_models == MODELS_11
    assert d.splits is not None and set(d.splits) == {"test"}
    assert d.tasks is not None and set(d.tasks) == {"arc-challenge"}
    first = raw.iloc[0]
    i = d.query_ids.index(first["sample_id"])
    assert d.queries[i] == "\n\n".join(ast.literal_eval(first["prompt"]))
    for m in ("gpt-4-1106-preview", "mistralai/mistral-7b-chat"):
        j = d.model_index(m)
        assert d.scores[i, j] == float(first[m])
        assert d.costs is not None and d.costs[i, j] == float(first[f"{m}|total_cost"])
        assert d.responses is not None
        assert d.responses[i, j] == "\n\n".join(ast.literal_eval(first[f"{m}|model_response"]))


def test_error_mode_names_the_defective_ids(arc: tuple[Path, Path]) -> None:
    test, _ = arc
    with pytest.raises(DefectError) as exc:
        load_routerbench(test)
    report = exc.value.report
    assert report.ids("duplicate_id") == [IN_TEST_TWICE]
    assert report.ids("missing_score") == [STRADDLING]  # its other copy is in train
    msg = str(exc.value)
    assert IN_TEST_TWICE in msg and "arc_challenge_test.csv row" in msg


def test_drop_mode_drops_exactly_the_defective_rows(arc: tuple[Path, Path]) -> None:
    test, _ = arc
    raw = _raw(test)
    d = load_routerbench(test, on_defect="drop")
    model_cols = [c for c in raw.columns if f"{c}|total_cost" in raw.columns]
    complete = raw[model_cols].ne("").all(axis=1)
    counts = raw["sample_id"].value_counts()
    # independent expectation: complete rows whose id occurs once
    expected = raw.loc[complete & raw["sample_id"].map(counts).eq(1), "sample_id"].tolist()
    assert d.query_ids == expected
    rep = d.meta["defects"]
    assert sorted(rep["dropped_queries"]) == sorted([IN_TEST_TWICE, STRADDLING])
    assert rep["dropped_rows"] == 3
    assert not np.isnan(d.scores).any()


def test_duplicates_across_train_and_test_are_reported(arc: tuple[Path, Path]) -> None:
    d = load_routerbench(list(arc), on_defect="drop")
    rep = d.meta["defects"]
    dups = {item["id"]: item for item in rep["items"]["duplicate_id"]}
    assert set(dups) == {IN_TEST_TWICE, STRADDLING, IN_TRAIN_TWICE}
    assert "copies in splits test, train" in dups[STRADDLING]["detail"]
    assert "arc_challenge_train.csv row" in dups[STRADDLING]["where"]
    assert "arc_challenge_test.csv row" in dups[STRADDLING]["where"]
    assert "splits" not in dups[IN_TRAIN_TWICE]["detail"]
    assert any("1 duplicate ids have copies in different splits" in n for n in rep["notes"])
    for qid in dups:
        assert qid not in d.query_ids


def test_complete_copy_beats_incomplete_copy(arc: tuple[Path, Path], tmp_path: Path) -> None:
    test, _ = arc
    raw = _raw(test)
    # make the test copy of the straddling id complete by filling its one missing score
    # with the value its train copy records for that model
    row = raw.index[raw["sample_id"] == STRADDLING][0]
    missing = [c for c in raw.columns if f"{c}|total_cost" in raw.columns and raw.at[row, c] == ""]
    assert missing == ["gpt-3.5-turbo-1106"]
    fixed = raw.copy()
    fixed.loc[row, missing[0]] = "1.0"
    duplicated = pd.concat([fixed, raw.loc[[row]]], ignore_index=True)  # + the incomplete copy
    path = tmp_path / "dup_test.csv"
    duplicated.to_csv(path, index=False)
    d = load_routerbench(path, on_defect="drop")
    assert STRADDLING in d.query_ids
    item = next(i for i in d.meta["defects"]["items"]["duplicate_id"] if i["id"] == STRADDLING)
    assert f"kept the complete copy at dup_test.csv row {row + 1}" in item["detail"]


def test_keep_mode_keeps_incomplete_rows_and_the_first_conflicting_copy(
    arc: tuple[Path, Path],
) -> None:
    test, _ = arc
    raw = _raw(test)
    d = load_routerbench(test, on_defect="keep")
    assert STRADDLING in d.query_ids and IN_TEST_TWICE in d.query_ids
    i = d.query_ids.index(STRADDLING)
    assert np.isnan(d.scores[i, d.model_index("gpt-3.5-turbo-1106")])
    # the two copies of IN_TEST_TWICE differ: keep holds the first, as recorded
    first = raw[raw["sample_id"] == IN_TEST_TWICE].iloc[0]
    k = d.query_ids.index(IN_TEST_TWICE)
    j = d.model_index("claude-v2")
    assert d.responses is not None
    assert d.responses[k, j] == "\n\n".join(ast.literal_eval(first["claude-v2|model_response"]))
    [dup] = d.meta["defects"]["items"]["duplicate_id"]
    assert dup["id"] == IN_TEST_TWICE and "copies differ, kept the first" in dup["detail"]
    assert np.isnan(d.scores).sum() == 1 + int(np.isnan(d.scores[k]).sum())


def test_train_test_overlap_by_text(shared_data: Path, csv_slice, tmp_path: Path) -> None:
    rb = shared_data / "routerbench"
    test = csv_slice(rb / "mbpp_test.csv", tmp_path / "mbpp_test.csv")
    train = csv_slice(rb / "mbpp_train.csv", tmp_path / "mbpp_train.csv")
    raw_test, raw_train = _raw(test), _raw(train)
    overlapping = raw_train.loc[raw_train["prompt"].isin(set(raw_test["prompt"])), "sample_id"]
    assert len(overlapping) > 0
    with pytest.raises(DefectError) as exc:
        load_routerbench([train, test])
    assert exc.value.report.ids("train_test_overlap") == overlapping.tolist()
    d = load_routerbench([train, test], on_defect="drop")
    assert d.meta["train_test_overlap_removed"] == len(overlapping)
    assert d.split("test").n_queries == len(raw_test)
    assert d.split("train").n_queries == len(raw_train) - len(overlapping)
    kept = load_routerbench([train, test], on_defect="keep")
    assert kept.split("train").n_queries == len(raw_train)


def test_prompt_parsing_matches_literal_eval(shared_data: Path) -> None:
    raw = pd.read_csv(shared_data / "routerbench" / "mbpp_test.csv", dtype=str, nrows=60)
    cells = raw["prompt"].tolist() + [
        v for c in raw.columns if c.endswith("|model_response") for v in raw[c].tolist()
    ]
    for cell in cells:
        assert parse_text_list(cell) == "\n\n".join(ast.literal_eval(cell))


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("['caf\\xe9 \\u4e2d\\n']", "café 中\n"),
        ("['a\\\\中']", "a\\中"),
        ('["it\'s"]', "it's"),
        ("['a', 'b']", "a\n\nb"),
        ("plain text", "plain text"),
        ("['never closed", "['never closed"),
        ("[__import__('os').system('echo hi')]", "[__import__('os').system('echo hi')]"),
        ("[1, 2]", "[1, 2]"),
    ],
)
def test_prompt_parsing_edge_cases(cell: str, expected: str) -> None:
    assert parse_text_list(cell) == expected


def test_not_a_routerbench_file(tmp_path: Path) -> None:
    p = tmp_path / "x_test.csv"
    p.write_text("id,text\n1,hello\n")
    with pytest.raises(DataError, match="not a RouterBench file: missing sample_id, prompt"):
        load_routerbench(p)


def test_score_out_of_range(arc: tuple[Path, Path], tmp_path: Path) -> None:
    test, _ = arc
    raw = _raw(test)
    raw.loc[2, "claude-v2"] = "2.0"
    p = tmp_path / "bad_test.csv"
    raw.to_csv(p, index=False)
    with pytest.raises(DataError, match=r"1 rows have a score .*bad_test.csv row 3"):
        load_routerbench(p, on_defect="drop")


class _Tripwire:
    """Unpickling this creates a file: evidence that the pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_pickles_are_refused_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    p = tmp_path / "routerbench_0shot.pkl"
    p.write_bytes(pickle.dumps(_Tripwire(marker)))
    for call in (
        lambda: load_routerbench(p),
        lambda: load_routerbench(tmp_path),
        lambda: load_data(p),
    ):
        with pytest.raises(DataError, match="trust_pickle=True"):
            call()
    assert not marker.exists()


def test_trusted_pickle_matches_csv(arc: tuple[Path, Path], tmp_path: Path) -> None:
    test, _ = arc
    df = pd.read_csv(test)
    pkl = tmp_path / "arc_challenge_test.pkl"
    df.to_pickle(pkl)
    a = load_routerbench(test, on_defect="drop")
    b = load_routerbench(pkl, on_defect="drop", trust_pickle=True)
    assert a.query_ids == b.query_ids and a.queries == b.queries
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.costs, b.costs)  # type: ignore[arg-type]
    assert b.splits == ["test"] * b.n_queries


def test_full_test_files_match_published_figures(shared_data: Path) -> None:
    """The data README: gpt-4 scores about 0.879 at about $0.0050; the oracle about 0.976."""
    files = sorted((shared_data / "routerbench").glob("*_test.csv"))
    d = load_routerbench(files, on_defect="drop")
    raw = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files])
    model_cols = [c for c in raw.columns if f"{c}|total_cost" in raw.columns]
    complete = raw[model_cols].ne("").all(axis=1)
    counts = raw["sample_id"].value_counts()
    expected = int((complete & raw["sample_id"].map(counts).eq(1)).sum())
    assert (d.n_queries, d.n_models) == (expected, MODELS_11)
    j = d.model_index("gpt-4-1106-preview")
    assert d.scores[:, j].mean() == pytest.approx(0.879, abs=0.001)
    assert d.costs is not None
    assert d.costs[:, j].mean() == pytest.approx(0.0050, abs=0.0001)
    assert d.scores.max(axis=1).mean() == pytest.approx(0.976, abs=0.001)


def test_identical_and_conflicting_complete_copies(arc: tuple[Path, Path], tmp_path: Path) -> None:
    test, _ = arc
    raw = _raw(test)
    same, other = raw.iloc[[0]].copy(), raw.iloc[[1]].copy()
    flipped = other.copy()
    flipped["claude-v2"] = "0.0" if other["claude-v2"].iloc[0] == "1.0" else "1.0"
    path = tmp_path / "copies_test.csv"
    pd.concat([raw, same, flipped], ignore_index=True).to_csv(path, index=False)
    d = load_routerbench(path, on_defect="drop")
    dups = {i["id"]: i["detail"] for i in d.meta["defects"]["items"]["duplicate_id"]}
    id_same, id_other = same["sample_id"].iloc[0], other["sample_id"].iloc[0]
    assert "identical copies, kept the first" in dups[id_same]
    assert "copies with different scores, dropped all" in dups[id_other]
    assert id_same in d.query_ids and id_other not in d.query_ids
    assert d.query_ids.count(id_same) == 1


def test_inf_or_negative_total_cost_is_a_defect(
    shared_data: Path, csv_slice, tmp_path: Path
) -> None:
    path = csv_slice(
        shared_data / "routerbench" / "mbpp_test.csv", tmp_path / "mbpp_test.csv", range(20)
    )
    raw = _raw(path)
    raw.loc[3, "claude-v2|total_cost"] = "inf"
    raw.loc[7, "gpt-4-1106-preview|total_cost"] = "-0.5"
    raw.to_csv(path, index=False)
    with pytest.raises(DefectError) as exc:
        load_routerbench(path)
    items = exc.value.report.items["invalid_cost"]
    assert [(d.id, d.where) for d in items] == [
        (raw.at[3, "sample_id"], "mbpp_test.csv row 4"),
        (raw.at[7, "sample_id"], "mbpp_test.csv row 8"),
    ]
    assert "claude-v2 has inf" in items[0].detail
    assert "gpt-4-1106-preview has -0.5" in items[1].detail
    d = load_routerbench(path, on_defect="drop")
    assert d.n_queries == 18 and d.costs is not None and np.isfinite(d.costs).all()


@pytest.mark.parametrize("prompt", ["", "['']", "['   ']"])
def test_empty_prompt_is_an_empty_query(
    shared_data: Path, csv_slice, tmp_path: Path, prompt: str
) -> None:
    path = csv_slice(
        shared_data / "routerbench" / "mbpp_test.csv", tmp_path / "mbpp_test.csv", range(5)
    )
    raw = _raw(path)
    raw.loc[2, "prompt"] = prompt
    raw.to_csv(path, index=False)
    with pytest.raises(DefectError) as exc:
        load_routerbench(path)
    [defect] = exc.value.report.items["malformed_row"]
    assert (defect.where, defect.detail) == ("mbpp_test.csv row 3", "empty query")


def test_unknown_escapes_in_prompts_are_kept_without_warnings() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_text_list(r"['a\Eb']") == "a\\Eb"
        assert parse_text_list(r"['a\Eb', 'c\d']") == "a\\Eb\n\nc\\d"

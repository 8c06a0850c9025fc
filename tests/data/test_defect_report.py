"""DefectReport: JSON-safe, readable, attached to data, logged; DefectError carries it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from llmrouter_core.data import DefectError, DefectReport, load_routerbench
from llmrouter_core.errors import DataError, LLMRouterError


@pytest.fixture
def arc_test(shared_data: Path, csv_slice, tmp_path: Path) -> Path:
    src = shared_data / "routerbench" / "arc_challenge_test.csv"
    # rows 350-380 hold the real defects of this file (a twice-listed id, incomplete rows)
    return csv_slice(src, tmp_path / "arc_challenge_test.csv", range(350, 380))


def test_report_round_trips_through_json(arc_test: Path) -> None:
    d = load_routerbench(arc_test, on_defect="drop")
    raw = d.meta["defects"]
    again = DefectReport.from_dict(json.loads(json.dumps(raw)))
    assert again.to_dict() == raw
    assert again.counts == raw["counts"]
    assert raw["n_input_rows"] == 30
    assert raw["n_queries"] == d.n_queries
    assert raw["n_queries"] + len(raw["dropped_queries"]) <= raw["n_input_rows"]


def test_summary_is_readable_and_bounded(arc_test: Path) -> None:
    d = load_routerbench(arc_test, on_defect="drop")
    report = DefectReport.from_dict(d.meta["defects"])
    text = report.summary(max_items=2)
    lines = text.splitlines()
    assert lines[0].startswith("arc_challenge_test.csv: 30 rows read, ")
    missing = next(line for line in lines if line.strip().startswith("missing_score:"))
    n_missing = report.counts["missing_score"]
    assert f"missing_score: {n_missing} (" in missing
    if n_missing > 2:
        assert f"... {n_missing - 2} more" in missing
    assert lines[-1] == f"  result: {d.n_queries} queries x 11 models"
    assert any(line.startswith("  dropped (drop):") for line in lines)


def test_defect_error_is_a_data_error_with_the_report(arc_test: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_routerbench(arc_test)
    err = exc.value
    assert isinstance(err, DefectError) and isinstance(err, LLMRouterError)
    assert isinstance(err, ValueError)
    assert err.report.has_defects
    # nothing is reported as dropped when nothing was returned
    assert err.report.dropped_rows == 0 and err.report.dropped_queries == []
    first_ids = [items[0].id for items in err.report.items.values()]
    for qid in first_ids:
        assert qid in str(err)


def test_report_is_logged(
    arc_test: Path, shared_data: Path, csv_slice, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="llmrouter_core.data"):
        load_routerbench(arc_test, on_defect="drop")
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "duplicate_id" in warned[0].getMessage()
    caplog.clear()
    clean = csv_slice(
        shared_data / "routerbench" / "arc_challenge_test.csv",
        tmp_path / "clean_test.csv",
        range(30),
    )
    with caplog.at_level(logging.INFO, logger="llmrouter_core.data"):
        load_routerbench(clean)
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "no defects" in caplog.records[0].getMessage()


def test_unknown_kind_and_on_defect() -> None:
    r = DefectReport(source="x")
    with pytest.raises(ValueError, match="unknown defect kind"):
        r.add("typo", "q1")
    assert not r and r.counts == {}
    with pytest.raises(DataError, match="on_defect must be"):
        load_routerbench("unused.csv", on_defect="skip")

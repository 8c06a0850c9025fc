"""A corrupted or edited router directory is one ``PersistenceError`` at load, never a crash
later, a traceback of another type, or a router that fails at routing time. Includes a
property-based fuzz of the loader: mutated JSON values and damaged array files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrouter_core import get_router, load_router
from llmrouter_core.errors import LLMRouterError, PersistenceError

EXAMPLES = int(os.environ.get("LLMROUTER_FUZZ_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def saved(rb_small: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    train, _ = rb_small
    path = tmp_path_factory.mktemp("routers") / "linear"
    get_router("linear", alpha=10.0).fit(train).save(path)
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(path: Path, change: Any) -> None:
    doc = json.loads((path / "router.json").read_text())
    change(doc)
    (path / "router.json").write_text(json.dumps(doc))


def test_empty_or_truncated_arrays_are_one_clear_error(saved: Path, tmp_path: Path) -> None:
    data = (saved / "arrays.npz").read_bytes()
    for name, blob in (
        ("empty", b""),
        ("truncated", data[: len(data) // 2]),
        ("noise", b"PK\x03\x04" + bytes(64)),
    ):
        target = _copy(saved, tmp_path / name)
        (target / "arrays.npz").write_bytes(blob)
        with pytest.raises(PersistenceError, match=r"arrays\.npz"):
            load_router(target)


def test_an_edited_model_list_fails_at_load_not_at_routing(saved: Path, tmp_path: Path) -> None:
    target = _copy(saved, tmp_path / "models")

    def drop_last(doc: dict[str, Any]) -> None:
        doc["models"] = doc["models"][:-1]
        doc["pool"]["models"] = doc["pool"]["models"][:-1]

    _edit(target, drop_last)
    with pytest.raises(PersistenceError, match=r"do not fit together|models"):
        load_router(target)


def test_an_edited_feature_count_fails_at_load(saved: Path, tmp_path: Path) -> None:
    target = _copy(saved, tmp_path / "features")

    def shrink(doc: dict[str, Any]) -> None:
        doc["state"]["embedder"]["config"]["n_features"] = 1024

    _edit(target, shrink)
    with pytest.raises(PersistenceError):
        load_router(target)


def test_malformed_json_is_one_clear_error(saved: Path, tmp_path: Path) -> None:
    for name, text in (("garbage", "{not json"), ("list", "[1, 2]"), ("binary", "\udcff")):
        target = _copy(saved, tmp_path / name)
        (target / "router.json").write_text(text, errors="surrogateescape")
        with pytest.raises(PersistenceError):
            load_router(target)


# -- fuzz ------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:5]):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _outcome_is_clean(path: Path) -> None:
    try:
        router = load_router(path)
    except PersistenceError:
        return
    # A router that loads routes, or refuses with one of the library's errors.
    with contextlib.suppress(LLMRouterError):
        router.route("What is the capital of France?")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_mutated_router_json_loads_or_is_one_persistence_error(
    saved: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    doc = json.loads((saved / "router.json").read_text())
    where = data.draw(st.sampled_from(_paths(doc)))
    doc = _set(doc, where, data.draw(JSON_VALUES))
    target = _copy(saved, tmp_path_factory.mktemp("fuzz") / "r")
    (target / "router.json").write_text(json.dumps(doc))
    _outcome_is_clean(target)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_damaged_arrays_load_or_are_one_persistence_error(
    saved: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    target = _copy(saved, tmp_path_factory.mktemp("fuzz") / "r")
    with np.load(target / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = data.draw(st.sampled_from(sorted(arrays)))
    change = data.draw(st.sampled_from(["drop", "shape", "dtype", "nan"]))
    if change == "drop":
        del arrays[key]
    elif change == "shape":
        arrays[key] = arrays[key].ravel()[: data.draw(st.integers(0, 3))]
    elif change == "dtype":
        arrays[key] = arrays[key].astype(np.int8)
    elif arrays[key].dtype.kind == "f" and arrays[key].size:
        arrays[key] = np.full_like(arrays[key], np.nan)
    np.savez(target / "arrays.npz", **arrays)
    _outcome_is_clean(target)

"""Property-based fuzz of the data loaders and of the ``llmrouter`` argument parser.

Whatever the input, the outcome is either a result or one of the library's errors:

- data loaders (every supported format): random bytes, mutated real files and generated
  plausible rows give a valid :class:`RoutingData` or an :class:`LLMRouterError`, never
  another exception;
- the CLI: random argument lists (with real and broken files) end with exit code 0, with one
  ``error:`` line on stderr, or with click's own usage error (exit 2) -- never a traceback.

The seeds are slices of the real data in ``$LLMROUTER_DATA_DIR``. Each property runs a
bounded number of examples (``deadline=None``: the first load pays for imports); the total
is printed at the end of the module (``pytest -s``) and by ``--hypothesis-show-statistics``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llmrouter_core.cli.main import app
from llmrouter_core.data import RoutingData, load_data, load_dataset, save_canonical
from llmrouter_core.errors import LLMRouterError
from llmrouter_core.providers.replay import set_replay_data
from llmrouter_core.registry import get_router

EXAMPLES = int(os.environ.get("LLMROUTER_FUZZ_EXAMPLES", "200"))  # per property
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
RUNS: dict[str, int] = {}


def count(name: str) -> None:
    RUNS[name] = RUNS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_size() -> Iterator[None]:
    yield
    total = sum(RUNS.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(RUNS.items()))
    print(f"\nfuzz: {total} examples ({detail})")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def fresh(root: Path) -> Path:
    """A new empty folder per example (hypothesis reuses fixtures across examples)."""
    return Path(tempfile.mkdtemp(dir=root))


# -- seeds: small slices of every real format ------------------------------------------------


@functools.cache
def seeds() -> dict[str, dict[str, bytes]]:
    """``{kind: {relative file name: bytes}}``: one small real sample per supported format.

    (A cached function, not a fixture: hypothesis would print the whole dict with every
    falsifying example.)"""
    data_dir = Path(os.environ["LLMROUTER_DATA_DIR"])
    rb = data_dir / "routerbench"
    lr = data_dir / "llmrouter"
    rl = data_dir / "routellm"

    def csv_head(path: Path, n: int) -> bytes:
        df = pd.read_csv(path, dtype=str, keep_default_na=False).head(n)
        return df.to_csv(index=False).encode()

    def jsonl_head(path: Path, keep: Callable[[dict[str, Any]], bool]) -> bytes:
        lines = path.read_text(encoding="utf-8").split("\n")
        return ("\n".join(x for x in lines if x.strip() and keep(json.loads(x))) + "\n").encode()

    rb_data = load_dataset("routerbench", split="test").subset(np.arange(5))
    rb_data.meta = {}
    with tempfile.TemporaryDirectory() as tmp:
        canon = {
            suffix: save_canonical(rb_data, Path(tmp) / f"scores{suffix}").read_bytes()
            for suffix in (".csv", ".jsonl", ".parquet")
        }
    nq = json.loads((lr / "router_train_data_nq.json").read_text(encoding="utf-8"))[:3]
    routing = [
        {
            "task_name": "natural_qa",
            "query": it["query"],
            "model_name": name,
            "response": resp,
            "input_tokens": math.ceil(len(it["query"]) / 4),
            "output_tokens": math.ceil(len(resp) / 4),
            "response_time": 1.5,
            "performance": perf,
            "embedding_id": k,
        }
        for k, it in enumerate(nq)
        for name, perf, resp in zip(
            it["llm_name_list"], it["perf_list"], it["response_list"], strict=True
        )
    ]
    qids = {81, 82}
    return {
        "canonical-csv": {"scores.csv": canon[".csv"]},
        "canonical-jsonl": {"scores.jsonl": canon[".jsonl"]},
        "canonical-parquet": {"scores.parquet": canon[".parquet"]},
        "routerbench": {"mbpp_test.csv": csv_head(rb / "mbpp_test.csv", 4)},
        "dcrouter": {
            "dc_test.json": json.dumps(
                json.loads((lr / "dcrouter_test.json").read_text(encoding="utf-8"))[:4]
            ).encode()
        },
        "llmrouter-nq": {"nq_train.json": json.dumps(nq).encode()},
        "llmrouter-routing": {
            "routing_train.jsonl": "".join(json.dumps(r) + "\n" for r in routing).encode()
        },
        "routellm": {
            "mmlu_anatomy.csv": csv_head(rl / "mmlu" / "responses" / "mmlu_anatomy.csv", 6)
        },
        "routellm-mt-bench": {
            "mt_bench/question.jsonl": jsonl_head(
                rl / "mt_bench" / "question.jsonl", lambda o: o["question_id"] in qids
            ),
            "mt_bench/judgements.jsonl": jsonl_head(
                rl / "mt_bench" / "judgements.jsonl", lambda o: o["question_id"] in qids
            ),
        },
    }


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` under ``folder``; return what a user would pass to the loader."""
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    first = folder / next(iter(files))
    return first.parent if len(files) > 1 else first


def check_load(path: Path, mode: str) -> RoutingData | None:
    """Load ``path``; the result must be valid data or the error one of the library's."""
    count("loader")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            data = load_data(path, on_defect=mode)
        except LLMRouterError:
            data = None
    ours = [f"{w.category.__name__}: {w.message}" for w in caught if "llmrouter_core" in w.filename]
    assert not ours, f"warnings raised in the loaders: {ours}"
    if data is None:
        return None
    assert isinstance(data, RoutingData)
    assert data.n_queries > 0 and data.n_models > 0
    assert len(set(data.query_ids)) == data.n_queries
    assert all(q.strip() for q in data.queries), "an empty query text was loaded"
    scores = data.scores[~np.isnan(data.scores)]
    assert ((scores >= 0) & (scores <= 1)).all()
    if mode != "keep":
        assert not np.isnan(data.scores).any()
    if data.costs is not None:
        known = data.costs[~np.isnan(data.costs)]
        assert np.isfinite(known).all() and (known >= 0).all(), "an invalid cost was loaded"
    return data


MODES = st.sampled_from(["error", "drop", "keep"])


# -- 1. random bytes in every format ---------------------------------------------------------

SUFFIXES = [".csv", ".jsonl", ".ndjson", ".json", ".parquet", ".pkl", ".txt", ""]


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    suffix=st.sampled_from(SUFFIXES),
    mode=MODES,
)
def test_random_bytes_in_any_format(root: Path, content: bytes, suffix: str, mode: str) -> None:
    path = fresh(root) / f"data{suffix}"
    path.write_bytes(content)
    check_load(path, mode)


# -- 2. mutated real files -------------------------------------------------------------------

KINDS = [
    "canonical-csv",
    "canonical-jsonl",
    "canonical-parquet",
    "routerbench",
    "dcrouter",
    "llmrouter-nq",
    "llmrouter-routing",
    "routellm",
    "routellm-mt-bench",
]
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]),
        st.integers(min_value=0, max_value=1 << 30),
        st.sampled_from(list(b'\x00\n\r",[]{}:\\0-.9eE\xff\xe9 ') + list(range(256))),
    ),
    min_size=1,
    max_size=6,
)


def mutate(content: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(content)
    for op, where, byte in edits:
        if not data:
            data.append(byte)
            continue
        i = where % len(data)
        if op == "flip":
            data[i] = byte
        elif op == "insert":
            data.insert(i, byte)
        elif op == "delete":
            del data[i : i + 1 + byte % 8]
        elif op == "truncate":
            del data[i:]
        else:  # duplicate a chunk (repeats lines, ids, keys)
            j = min(len(data), i + 1 + byte)
            data[j:j] = data[i:j]
    return bytes(data)


@FUZZ
@given(kind=st.sampled_from(KINDS), edits=EDITS, pick=st.integers(0, 1), mode=MODES)
def test_mutated_real_files(
    root: Path, kind: str, edits: list[tuple[str, int, int]], pick: int, mode: str
) -> None:
    files = dict(seeds()[kind])
    rel = list(files)[pick % len(files)]
    files[rel] = mutate(files[rel], edits)
    check_load(write_files(fresh(root), files), mode)


# -- 3. plausible rows: real-looking structure, odd values -----------------------------------

ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\t\n",
        "[/x]",
        "[v2]",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "1e309",
        "-1",
        "-0.0",
        "2",
        "0.5",
        "True",
        "false",
        "null",
        "None",
        "N/A",
        "['']",
        "['2+2?', 'and 3+3?']",
        "[" * 40,
        "\\",
        "\x00",
        "\ufeff",
        "\u2028",
        "a|total_cost",
        "q1",
        "What is 2+2?",
    ]
)
TEXT = st.one_of(ODD_TEXT, st.text(max_size=12))
NUMBER = st.one_of(
    st.sampled_from([0, 1, 0.5, 1.0, -0.0, 2, -1, 1e-9, 10, 1e308]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
)
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBER, TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
IDS = st.one_of(st.sampled_from(["q1", "q2", "q3"]), JSON_VALUE)
QUERY = st.one_of(st.sampled_from(["What is 2+2?", "Name a prime.", "Capital of France?"]), TEXT)
MODEL = st.one_of(st.sampled_from(["small", "large"]), TEXT)
SCORE = st.one_of(st.sampled_from([0, 1, 0.5, True, None]), JSON_VALUE)
COST = st.one_of(st.sampled_from([0.001, 0.0, 2e-5, None]), JSON_VALUE)

CANONICAL_ROW = st.fixed_dictionaries(
    {"query_id": IDS, "query": QUERY, "model": MODEL, "score": SCORE},
    optional={
        "cost": COST,
        "input_tokens": st.one_of(st.integers(0, 500), JSON_VALUE),
        "output_tokens": st.one_of(st.integers(0, 500), JSON_VALUE),
        "latency_s": st.one_of(st.floats(0, 10), JSON_VALUE),
        "task": TEXT,
        "split": st.one_of(st.sampled_from(["train", "test", "val"]), TEXT),
        "response": st.one_of(TEXT, JSON_VALUE),
    },
)
MODELS = ["small", "large"]
ROUTERBENCH_ROW = st.fixed_dictionaries(
    {
        "sample_id": IDS,
        "prompt": st.one_of(QUERY.map(lambda q: repr([q])), QUERY),
        "eval_name": TEXT,
        **{m: SCORE for m in MODELS},
        **{f"{m}|total_cost": COST for m in MODELS},
        **{f"{m}|model_response": st.one_of(TEXT.map(lambda t: repr([t])), TEXT) for m in MODELS},
    }
)
ROUTELLM_ROW = st.fixed_dictionaries(
    {"prompt": QUERY, **{m: st.one_of(st.sampled_from(["True", "False"]), TEXT) for m in MODELS}}
)
DCROUTER_ITEM = st.one_of(
    st.fixed_dictionaries(
        {"question": QUERY, "scores": st.dictionaries(MODEL, SCORE, max_size=3)},
        optional={"cluster_id": JSON_VALUE},
    ),
    JSON_VALUE,
)
NQ_ITEM = st.integers(1, 3).flatmap(
    lambda n: st.fixed_dictionaries(
        {
            "q_id": IDS,
            "query": QUERY,
            "llm_name_list": st.lists(MODEL, min_size=n, max_size=n),
            "perf_list": st.lists(SCORE, min_size=n, max_size=n),
        },
        optional={
            "cost_list": st.lists(COST, min_size=n, max_size=n + 1),
            "response_list": st.lists(TEXT, min_size=n, max_size=n),
            "source": TEXT,
        },
    )
)
ROUTING_ROW = st.fixed_dictionaries(
    {"query": QUERY, "model_name": MODEL, "performance": SCORE},
    optional={
        "embedding_id": IDS,
        "task_name": TEXT,
        "input_tokens": st.one_of(st.integers(0, 500), JSON_VALUE),
        "output_tokens": st.one_of(st.integers(0, 500), JSON_VALUE),
        "response_time": JSON_VALUE,
        "cost": COST,
        "api_key_used": TEXT,
    },
)


def csv_bytes(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row.get(c)) for c in columns])
    return out.getvalue().encode("utf-8", "surrogatepass")


def jsonl_bytes(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8", "surrogatepass")


PLAUSIBLE_KINDS = [
    "canonical-csv",
    "canonical-jsonl",
    "routerbench",
    "routellm",
    "dcrouter",
    "nq",
    "routing",
    "mt-bench",
]


@st.composite
def plausible_files(draw: st.DrawFn) -> tuple[str, dict[str, bytes]]:
    """A file of one format with generated rows (mostly well-formed, odd values)."""
    kind = draw(st.sampled_from(PLAUSIBLE_KINDS))
    if kind in ("canonical-csv", "canonical-jsonl"):
        rows = draw(st.lists(CANONICAL_ROW, min_size=1, max_size=8))
        if kind == "canonical-jsonl":
            return kind, {"scores.jsonl": jsonl_bytes(rows)}
        cols = sorted({c for r in rows for c in r}, key=list(CANONICAL_ROW_KEYS).index)
        return kind, {"scores.csv": csv_bytes(rows, cols)}
    if kind == "routerbench":
        rows = draw(st.lists(ROUTERBENCH_ROW, min_size=1, max_size=6))
        return kind, {"mbpp_test.csv": csv_bytes(rows, list(rows[0]))}
    if kind == "routellm":
        rows = draw(st.lists(ROUTELLM_ROW, min_size=1, max_size=6))
        return kind, {"mmlu_anatomy.csv": csv_bytes(rows, ["prompt", *MODELS])}
    if kind == "dcrouter":
        items = draw(st.lists(DCROUTER_ITEM, min_size=1, max_size=6))
        return kind, {"dc_test.json": json.dumps(items).encode("utf-8", "surrogatepass")}
    if kind == "nq":
        items = draw(st.lists(NQ_ITEM, min_size=1, max_size=5))
        items[0].setdefault("llm_name_list", [])  # keeps the format recognisable
        return kind, {"nq_train.json": json.dumps(items).encode("utf-8", "surrogatepass")}
    if kind == "routing":
        rows = draw(st.lists(ROUTING_ROW, min_size=1, max_size=8))
        return kind, {"routing_train.jsonl": jsonl_bytes(rows)}
    questions = draw(
        st.lists(
            st.fixed_dictionaries(
                {"question_id": st.one_of(st.integers(1, 3), JSON_VALUE)},
                optional={"turns": st.one_of(st.lists(QUERY, max_size=2), JSON_VALUE)},
            ),
            min_size=1,
            max_size=4,
        )
    )
    judgements = draw(
        st.lists(
            st.fixed_dictionaries(
                {"question_id": st.one_of(st.integers(1, 3), JSON_VALUE), "model": MODEL},
                optional={"score": st.one_of(st.integers(-1, 11), JSON_VALUE), "turn": NUMBER},
            ),
            max_size=6,
        )
    )
    return kind, {
        "mt_bench/question.jsonl": jsonl_bytes(questions),
        "mt_bench/judgements.jsonl": jsonl_bytes(judgements),
    }


CANONICAL_ROW_KEYS = (
    "query_id",
    "query",
    "model",
    "score",
    "cost",
    "input_tokens",
    "output_tokens",
    "latency_s",
    "task",
    "split",
    "response",
)


@FUZZ
@given(spec=plausible_files(), mode=MODES)
def test_plausible_rows_with_odd_values(
    root: Path, spec: tuple[str, dict[str, bytes]], mode: str
) -> None:
    _, files = spec
    check_load(write_files(fresh(root), files), mode)


# -- 4. the CLI argument parser --------------------------------------------------------------

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_files(root: Path, data_dir: Path) -> dict[str, str]:
    """Real and broken files the generated command lines point at."""
    base = fresh(root)
    rb = load_dataset("routerbench", split="test")
    small = rb.subset(np.arange(24))
    small.meta = {}
    small.splits = ["train"] * 16 + ["test"] * 8
    train = save_canonical(small, base / "train.csv")
    replay = base / "replay" / "mbpp_test.csv"
    replay.parent.mkdir()
    src = pd.read_csv(data_dir / "routerbench" / "mbpp_test.csv", dtype=str, keep_default_na=False)
    src.head(10).to_csv(replay, index=False)
    prompts = load_data(replay, on_defect="drop").queries
    router_dir = base / "router"
    get_router("single").fit(small.split("train")).save(router_dir)
    queries = base / "queries.jsonl"
    queries.write_text(
        "".join(json.dumps({"query_id": i, "query": q}) + "\n" for i, q in enumerate(prompts[:3]))
    )
    inputs = base / "inputs.txt"
    inputs.write_text("\n".join(prompts[:3]) + "\n")
    bad = base / "bad.jsonl"
    bad.write_bytes(b'{"query_id": 1, "query": ""}\n\xff\n')
    pool = base / "pool.json"
    pool.write_text(
        json.dumps(
            {"models": [{"name": m, "input_price": 1.0, "output_price": 2.0} for m in rb.models]}
        )
    )
    (base / "empty_dir").mkdir()
    (base / "decoy.txt").write_text("an existing file in the way of an output\n")
    return {
        "train": str(train),
        "replay": str(replay),
        "router": str(router_dir),
        "queries": str(queries),
        "inputs": str(inputs),
        "bad": str(bad),
        "pool": str(pool),
        "dir": str(base / "empty_dir"),
        "decoy": str(base / "decoy.txt"),
        "missing": str(base / "[/x]" / "missing.csv"),
        "prompt": prompts[0],
        "base": str(base),
    }


NUMBER_TEXT = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1", "2", "0.5", "1e309", "abc", "", "1_0"]),
    st.integers(-3, 50).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.floats(0, 100).map(str),
)
FLAG = st.just(None)

# sampled_from draws uniformly (integers favour their bounds, which would make "rare" common)
RARELY = st.sampled_from([False] * 9 + [True])
USUALLY = st.sampled_from([True] * 3 + [False])


def often(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, else ``other``."""
    return USUALLY.flatmap(lambda k: usual if k else other)


@st.composite
def command_lines(draw: st.DrawFn, files: dict[str, str]) -> tuple[str, list[str]]:
    """``(command, argument list)``: a random ``llmrouter`` command line with real, broken
    and odd values (sometimes with a stray token anywhere)."""
    path = st.sampled_from(
        [files[k] for k in ("train", "replay", "pool", "bad", "dir", "missing", "queries")]
    )
    fresh_out = st.builds(
        lambda name: str(Path(tempfile.mkdtemp(dir=files["base"])) / name),
        st.sampled_from(["out", "o.jsonl", "[v2]/o.json", "[/x]"]),
    )
    # outputs never go to the input paths (a run would change what later examples read)
    out = often(fresh_out, st.sampled_from([files["dir"], files["decoy"]]))
    router_dir = often(st.just(files["router"]), st.sampled_from([files["dir"], files["missing"]]))
    data = often(st.just(files["train"]), path | st.sampled_from(["routerbench2", "x.csv"]))
    on_defect = often(st.sampled_from(["drop", "error"]), st.sampled_from(["keep", "[red]x"]))
    number = NUMBER_TEXT
    integer = often(st.integers(-2, 50).map(str), st.sampled_from(["0.5", "abc", "", "1e3"]))
    # the required options (one left out now and then), then optional ones
    required: dict[str, dict[str, st.SearchStrategy[Any]]] = {
        "train": {
            "--data": data,
            "--out": out,
            "--router": often(st.sampled_from(["single", "knn"]), st.sampled_from(["nope", "[x]"])),
        },
        "route": {
            "--router-dir": router_dir,
            "--queries": often(st.just(files["queries"]), path),
            "--output": out,
        },
        "evaluate": {"--router-dir": router_dir, "--data": data},
        "infer": {"-r": router_dir},
        "chat": {"-r": router_dir},
        "list-routers": {},
    }
    optional: dict[str, dict[str, st.SearchStrategy[Any]]] = {
        "train": {
            "--pool": often(st.just(files["pool"]), path),
            "--split": st.sampled_from(["train", "test", "val", "[/x]"]),
            "--param": st.sampled_from(["n_neighbors=3", "n_neighbors=-3", "x", "=1", "k=["]),
            "--on-defect": on_defect,
            "-v": FLAG,
        },
        "route": {
            "--sweep": integer,
            "--cost-weight": number,
            "--budget": number,
            "--details": FLAG,
        },
        "evaluate": {
            "--split": st.sampled_from(["train", "test", "[/x]"]),
            "--pool": often(st.just(files["pool"]), path),
            "--n-points": integer,
            "--on-defect": on_defect,
            "--json": out,
        },
        "infer": {
            # small files only: every line of a text file is a query to answer
            "--input": st.sampled_from(
                [files[k] for k in ("inputs", "inputs", "bad", "queries", "pool", "dir", "missing")]
            ),
            "--route-only": FLAG,
            "--json": FLAG,
            "--pool": often(st.just(files["pool"]), path),
            "--model": st.sampled_from(["claude-v2", "nope", "[/x]"]),
            "--cost-weight": number,
            "--max-cost": number,
            "--budget": number,
            "--max-tokens": integer,
            "--temperature": number,
            "--concurrency": integer,
            "--timeout": number,
        },
        "chat": {
            "--mode": st.sampled_from(["current_only", "full_context", "retrieval", "[/x]"]),
            "--top-k": integer,
            "--system": TEXT,
            "--cost-weight": number,
            "--max-cost": number,
            "--budget": number,
            "--max-tokens": integer,
            "--temperature": number,
            "--no-stream": FLAG,
            "--timeout": number,
        },
        "list-routers": {"--json": FLAG},
    }
    command = draw(st.sampled_from(sorted(required)))
    # Always given: --router (training the default router is slow and not what is fuzzed)
    # and -r (without a router, infer and chat would start the local models).
    names = list(required[command])
    optional_required = [n for n in names if n not in ("--router", "-r")]
    if optional_required and draw(RARELY):  # now and then a required option is missing
        names.remove(draw(st.sampled_from(optional_required)))
    names += draw(st.lists(st.sampled_from(sorted(optional[command])), unique=True, max_size=4))
    if command == "route" and draw(USUALLY):  # one operating point option, usually
        points = [n for n in names if n in ("--sweep", "--cost-weight", "--budget")]
        names = [n for n in names if n not in points[1:]]
    strategies = {**required[command], **optional[command]}
    args = [command]
    for name in names:
        value = draw(strategies[name])
        args += [name] if value is None else [name, str(value)]
    if command in ("infer", "chat"):
        # answers come from recorded data only: the fuzz never calls a provider
        args += ["--replay", files["replay"], "--max-retries", "0"]
    if command == "infer" and ("--input" not in names or draw(RARELY)):
        args.append(draw(often(st.just(files["prompt"]), TEXT)))
    if draw(RARELY):
        args.insert(draw(st.integers(0, len(args))), draw(TEXT | st.sampled_from(["--", "-"])))
    return command, args


BATCH_FAILED = re.compile(r"^\d+ of \d+ queries failed$")


def assert_clean_outcome(command: str, args: list[str], result: Result) -> None:
    shown = f"llmrouter {' '.join(args)}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{shown}\nraised {result.exception!r}"
    )
    assert "Traceback" not in result.output, shown
    if result.exit_code in (0, 2):  # a result, or click's own usage error (bad option syntax)
        return
    # the knob's default operating point, shown before any work, is not part of the error
    lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith("knob: ")]
    if "-v" in args:  # the log lines asked for come first
        lines = lines[-1:]
    if command == "infer" and (
        (lines and BATCH_FAILED.match(lines[-1]))  # a batch: per-query errors, then the count
        or (not lines and '"error"' in result.stdout)  # --json: the failure as JSON
    ):
        return
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert not lines[0].startswith("error: internal error"), shown


@FUZZ
@given(data=st.data())
def test_cli_argument_lists(cli_files: dict[str, str], data: st.DataObject) -> None:
    command, args = data.draw(command_lines(cli_files))
    # chat reads turns from stdin: a recorded prompt, an odd one, or nothing
    turns = data.draw(st.sampled_from(["", cli_files["prompt"] + "\n"]) | TEXT)
    try:
        result = runner.invoke(app, args, input=turns)
    finally:
        set_replay_data(None)
    count(f"cli {command} exit {result.exit_code}")
    assert_clean_outcome(command, args, result)

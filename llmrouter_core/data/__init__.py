"""Routing data: the in-memory :class:`RoutingData` and loaders for every supported format.

- :func:`load_canonical` / :func:`save_canonical`: the canonical long table (CSV, JSONL,
  Parquet), one row per (query, model).
- :func:`load_routerbench`: RouterBench's wide CSV (and, trusted, its pickles).
- :func:`load_dcrouter`, :func:`load_llmrouter_routing`, :func:`load_llmrouter_nq`:
  LLMRouter's formats.
- :func:`load_routellm_csv`, :func:`load_routellm_mt_bench`: RouteLLM's evaluation data.
- :func:`load_data`: any of the above, format detected from the file.
- :func:`load_dataset`: named public datasets (:data:`DATASETS`) under ``$LLMROUTER_DATA_DIR``.

Every loader validates its input and reports defects in a :class:`DefectReport`
(``data.meta["defects"]``); ``on_defect`` chooses between raising, dropping exactly the
defective rows, or keeping incomplete queries with ``nan`` scores.

Importing this package loads numpy only; pandas / pyarrow load when a file is read.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
    >>> _ = p.write_text("query_id,query,model,score\\nq1,hi,a,1\\nq1,hi,b,0\\n")
    >>> load_data(p)
    RoutingData('scores', 1 queries x 2 models)
"""

from __future__ import annotations

from llmrouter_core.data._assemble import dedupe_train_test
from llmrouter_core.data.canonical import (
    CANONICAL_COLUMNS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    load_canonical,
    save_canonical,
)
from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.data.datasets import (
    DATASETS,
    DatasetInfo,
    dataset_path,
    download_dataset,
    load_dataset,
    resolve_data_dir,
)
from llmrouter_core.data.defects import (
    DEFECT_KINDS,
    Defect,
    DefectError,
    DefectReport,
    OnDefect,
    defect_log_level,
)
from llmrouter_core.data.llmrouter import (
    load_dcrouter,
    load_llmrouter_nq,
    load_llmrouter_routing,
    read_query_tasks,
)
from llmrouter_core.data.loaders import detect_format, load_data
from llmrouter_core.data.routellm import (
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    load_routellm_csv,
    load_routellm_mt_bench,
    routellm_pool,
)
from llmrouter_core.data.routerbench import load_routerbench

__all__ = [
    "CANONICAL_COLUMNS",
    "DATASETS",
    "DEFECT_KINDS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "ROUTELLM_STRONG",
    "ROUTELLM_WEAK",
    "DatasetInfo",
    "Defect",
    "DefectError",
    "DefectReport",
    "FloatArray",
    "OnDefect",
    "RoutingData",
    "dataset_path",
    "dedupe_train_test",
    "defect_log_level",
    "detect_format",
    "download_dataset",
    "load_canonical",
    "load_data",
    "load_dataset",
    "load_dcrouter",
    "load_llmrouter_nq",
    "load_llmrouter_routing",
    "load_routellm_csv",
    "load_routellm_mt_bench",
    "load_routerbench",
    "read_query_tasks",
    "resolve_data_dir",
    "routellm_pool",
    "save_canonical",
]

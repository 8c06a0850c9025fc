"""Named public routing datasets, resolved under a data folder.

``load_dataset("routerbench")`` reads the files from ``<data_dir>/routerbench/``, where
``data_dir`` is the ``data_dir`` argument, else ``$LLMROUTER_DATA_DIR``, else
``~/.cache/llmrouter/data``. The layout:

.. code-block:: text

    routerbench/   {arc_challenge,mbpp,winograde}_{train,test}.csv   (or routerbench_0shot.pkl)
    llmrouter/     dcrouter_{train,test}.json, default_llm.json,
                   default_query_{train,test}.jsonl (optional), router_train_data_nq.json
    routellm/      mmlu/responses/mmlu_<subject>.csv, gsm8k/gsm8k_responses.csv,
                   gsm8k/contaminated_prompts.jsonl, mt_bench/{question,judgements}.jsonl

Files that are not there are fetched from their publishers only when ``download=True`` is
passed (RouterBench: its Hugging Face dataset, published as pickles, hence also
``trust_pickle=True``; LLMRouter and RouteLLM: their GitHub repositories). Setting
``LLMROUTER_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) disables downloads.

Named datasets are known to carry defects, so ``load_dataset`` defaults to
``on_defect="drop"``: the defective rows are dropped and the report is kept in
``data.meta["defects"]`` and logged at INFO (not as a warning: the defects are known and
documented; nothing for the caller to act on). All files of a dataset are loaded together
before ``split`` is applied, so that duplicates straddling splits and training queries that
repeat test queries are always found (and, with ``"drop"``, removed from training).

Example:
    >>> sorted(DATASETS)[:3]
    ['llmrouter', 'llmrouter-nq', 'routellm-gsm8k']
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrouter_core.data.core import RoutingData
from llmrouter_core.data.defects import defect_log_level
from llmrouter_core.errors import DataError

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "dataset_path",
    "download_dataset",
    "load_dataset",
    "resolve_data_dir",
]

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "LLMROUTER_DATA_DIR"
OFFLINE_ENVS = ("LLMROUTER_OFFLINE", "HF_HUB_OFFLINE")

_LLMROUTER_RAW = "https://raw.githubusercontent.com/ulab-uiuc/LLMRouter/main/"
_ROUTELLM_RAW = "https://raw.githubusercontent.com/lm-sys/RouteLLM/main/routellm/evals/"
_ROUTERBENCH_HF = "https://huggingface.co/datasets/withmartian/routerbench/resolve/main/"

MMLU_SUBJECTS = (
    "abstract_algebra",
    "anatomy",
    "astronomy",
    "business_ethics",
    "clinical_knowledge",
    "college_biology",
    "college_chemistry",
    "college_computer_science",
    "college_mathematics",
    "college_medicine",
    "college_physics",
    "computer_security",
    "conceptual_physics",
    "econometrics",
    "electrical_engineering",
    "elementary_mathematics",
    "formal_logic",
    "global_facts",
    "high_school_biology",
    "high_school_chemistry",
    "high_school_computer_science",
    "high_school_european_history",
    "high_school_geography",
    "high_school_government_and_politics",
    "high_school_macroeconomics",
    "high_school_mathematics",
    "high_school_microeconomics",
    "high_school_physics",
    "high_school_psychology",
    "high_school_statistics",
    "high_school_us_history",
    "high_school_world_history",
    "human_aging",
    "human_sexuality",
    "international_law",
    "jurisprudence",
    "logical_fallacies",
    "machine_learning",
    "management",
    "marketing",
    "medical_genetics",
    "miscellaneous",
    "moral_disputes",
    "moral_scenarios",
    "nutrition",
    "philosophy",
    "prehistory",
    "professional_accounting",
    "professional_law",
    "professional_medicine",
    "professional_psychology",
    "public_relations",
    "security_studies",
    "sociology",
    "us_foreign_policy",
    "virology",
    "world_religions",
)

_ROUTERBENCH_CSVS = tuple(
    f"routerbench/{task}_{split}.csv"
    for task in ("arc_challenge", "mbpp", "winograde")
    for split in ("train", "test")
)


@dataclass(frozen=True)
class DatasetInfo:
    """A named dataset: where its files live under the data folder and where they come from.

    Attributes:
        name: Short name for :func:`load_dataset`.
        description: One line.
        files: Required files, relative to the data folder.
        optional: Files used when present.
        source: The publisher's page.
        license: The data's license.
        downloads: ``(url, relative destination)`` pairs fetched by ``download=True``.
        optional_downloads: Downloads whose failure is only logged.

    Example:
        >>> DATASETS["routellm-mt-bench"].files
        ('routellm/mt_bench/question.jsonl', 'routellm/mt_bench/judgements.jsonl')
    """

    name: str
    description: str
    files: tuple[str, ...]
    source: str
    license: str
    downloads: tuple[tuple[str, str], ...] = ()
    optional: tuple[str, ...] = ()
    optional_downloads: tuple[tuple[str, str], ...] = ()


DATASETS: dict[str, DatasetInfo] = {
    "routerbench": DatasetInfo(
        name="routerbench",
        description="RouterBench (zero-shot): 11 models with real costs; ARC, MBPP, Winogrande",
        files=_ROUTERBENCH_CSVS,
        source="https://huggingface.co/datasets/withmartian/routerbench",
        license="MIT",
        downloads=(
            (_ROUTERBENCH_HF + "routerbench_0shot.pkl", "routerbench/routerbench_0shot.pkl"),
        ),
    ),
    "llmrouter": DatasetInfo(
        name="llmrouter",
        description="LLMRouter dcrouter data: 9 open models on 13 tasks, costs from pool prices",
        files=(
            "llmrouter/dcrouter_train.json",
            "llmrouter/dcrouter_test.json",
            "llmrouter/default_llm.json",
        ),
        optional=("llmrouter/default_query_train.jsonl", "llmrouter/default_query_test.jsonl"),
        source="https://github.com/ulab-uiuc/LLMRouter",
        license="MIT",
        downloads=(
            (
                _LLMROUTER_RAW + "data/dcrouter_preprocessed/train.json",
                "llmrouter/dcrouter_train.json",
            ),
            (
                _LLMROUTER_RAW + "data/dcrouter_preprocessed/test.json",
                "llmrouter/dcrouter_test.json",
            ),
            (
                _LLMROUTER_RAW + "llmrouter/data/example_data/llm_candidates/default_llm.json",
                "llmrouter/default_llm.json",
            ),
        ),
        optional_downloads=(
            (
                _LLMROUTER_RAW
                + "llmrouter/data/example_data/defaul_query_data/default_query_train.jsonl",
                "llmrouter/default_query_train.jsonl",
            ),
        ),
    ),
    "llmrouter-nq": DatasetInfo(
        name="llmrouter-nq",
        description="LLMRouter Natural Questions: 500 queries x 6 models with responses and costs",
        files=("llmrouter/router_train_data_nq.json",),
        source="https://github.com/ulab-uiuc/LLMRouter",
        license="MIT",
        downloads=(
            (
                _LLMROUTER_RAW + "data/routerdc/router_train_data_nq.json",
                "llmrouter/router_train_data_nq.json",
            ),
        ),
    ),
    "routellm-gsm8k": DatasetInfo(
        name="routellm-gsm8k",
        description="RouteLLM GSM8K: gpt-4-1106-preview vs Mixtral-8x7B, with responses",
        files=("routellm/gsm8k/gsm8k_responses.csv",),
        optional=("routellm/gsm8k/contaminated_prompts.jsonl",),
        source="https://github.com/lm-sys/RouteLLM",
        license="Apache-2.0",
        downloads=(
            (_ROUTELLM_RAW + "gsm8k/gsm8k_responses.csv", "routellm/gsm8k/gsm8k_responses.csv"),
            (
                _ROUTELLM_RAW + "gsm8k/contaminated_prompts.jsonl",
                "routellm/gsm8k/contaminated_prompts.jsonl",
            ),
        ),
    ),
    "routellm-mmlu": DatasetInfo(
        name="routellm-mmlu",
        description="RouteLLM MMLU: gpt-4-1106-preview vs Mixtral-8x7B on 57 subjects",
        files=tuple(f"routellm/mmlu/responses/mmlu_{s}.csv" for s in MMLU_SUBJECTS),
        optional=("routellm/mmlu/contaminated_prompts.jsonl",),
        source="https://github.com/lm-sys/RouteLLM",
        license="Apache-2.0",
        downloads=tuple(
            (
                _ROUTELLM_RAW + f"mmlu/responses/mmlu_{s}.csv",
                f"routellm/mmlu/responses/mmlu_{s}.csv",
            )
            for s in MMLU_SUBJECTS
        ),
        optional_downloads=(
            (
                _ROUTELLM_RAW + "mmlu/contaminated_prompts.jsonl",
                "routellm/mmlu/contaminated_prompts.jsonl",
            ),
        ),
    ),
    "routellm-mt-bench": DatasetInfo(
        name="routellm-mt-bench",
        description="RouteLLM MT-Bench: GPT-4 judge scores (1-10, scaled to 0.1-1) of the pair",
        files=("routellm/mt_bench/question.jsonl", "routellm/mt_bench/judgements.jsonl"),
        optional=("routellm/mt_bench/contaminated_prompts.jsonl",),
        source="https://github.com/lm-sys/RouteLLM",
        license="Apache-2.0",
        downloads=(
            (_ROUTELLM_RAW + "mt_bench/question.jsonl", "routellm/mt_bench/question.jsonl"),
            (_ROUTELLM_RAW + "mt_bench/judgements.jsonl", "routellm/mt_bench/judgements.jsonl"),
        ),
        optional_downloads=(
            (
                _ROUTELLM_RAW + "mt_bench/contaminated_prompts.jsonl",
                "routellm/mt_bench/contaminated_prompts.jsonl",
            ),
        ),
    ),
}


def resolve_data_dir(override: str | Path | None = None) -> Path:
    """The data folder: ``override``, else ``$LLMROUTER_DATA_DIR``, else the user cache."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "llmrouter" / "data"


#: Suffixes of data files: an argument ending in one is a path, not a dataset name.
DATA_SUFFIXES = (".csv", ".json", ".jsonl", ".ndjson", ".parquet", ".pq", ".pkl", ".pickle")


def _looks_like_path(text: str) -> bool:
    """Whether ``text`` is meant as a path: it has a separator or a data-file suffix."""
    seps = {"/", os.sep, os.altsep or "/"}
    return any(c in text for c in seps) or text.lower().endswith(DATA_SUFFIXES)


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))} (or give a file path)"
        ) from None


def dataset_path(name: str, *, data_dir: str | Path | None = None) -> Path:
    """Folder holding dataset ``name``'s files (it may not exist yet)."""
    info = _info(name)
    return resolve_data_dir(data_dir) / Path(info.files[0]).parts[0]


def _urlopen(url: str, timeout: float) -> Any:
    """Open ``url`` (a seam for tests, which never touch the network)."""
    import urllib.request

    return urllib.request.urlopen(url, timeout=timeout)  # fixed https URLs


def _offline() -> str | None:
    for env in OFFLINE_ENVS:
        if os.environ.get(env, "").strip().lower() in {"1", "true", "yes", "on"}:
            return env
    return None


def _fetch(url: str, dest: Path, *, timeout: float = 60.0) -> None:
    env = _offline()
    if env is not None:
        raise DataError(f"cannot download {url}: downloads are disabled ({env} is set)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {dest.parent} to download into: {exc}") from exc
    logger.info("downloading %s -> %s", url, dest)
    tmp_name = ""
    try:
        with (
            _urlopen(url, timeout) as resp,
            tempfile.NamedTemporaryFile("wb", dir=dest.parent, delete=False, suffix=".part") as tmp,
        ):
            tmp_name = tmp.name
            shutil.copyfileobj(resp, tmp)
        os.replace(tmp_name, dest)
    except Exception as exc:  # network stacks raise many types
        if tmp_name:
            Path(tmp_name).unlink(missing_ok=True)
        raise DataError(
            f"could not download {url}: {exc}. Download it by hand to {dest}, or point "
            f"{DATA_DIR_ENV} to a folder that has it."
        ) from exc


def download_dataset(
    name: str, *, data_dir: str | Path | None = None, trust_pickle: bool = False
) -> Path:
    """Fetch dataset ``name``'s missing files from its publisher into the data folder.

    Returns:
        The data folder.

    Raises:
        DataError: Downloads disabled, a network error, or RouterBench without
            ``trust_pickle`` (it is published as pickles).
    """
    info = _info(name)
    root = resolve_data_dir(data_dir)
    if name == "routerbench" and not trust_pickle:
        raise DataError(
            "RouterBench is published as pickled DataFrames, and loading a pickle can run "
            "arbitrary code: pass trust_pickle=True together with download=True to fetch and "
            f"load {info.downloads[0][0]}"
        )
    for url, rel in info.downloads:
        if not (root / rel).is_file():
            _fetch(url, root / rel)
    for url, rel in info.optional_downloads:
        if not (root / rel).is_file():
            try:
                _fetch(url, root / rel)
            except DataError as exc:
                logger.warning("optional file not downloaded: %s", exc)
    return root


def _missing(info: DatasetInfo, root: Path) -> list[str]:
    return [f for f in info.files if not (root / f).is_file()]


def _routerbench(root: Path, on_defect: str, pool: Any, trust_pickle: bool) -> RoutingData:
    from llmrouter_core.data.routerbench import load_routerbench

    if not _missing(DATASETS["routerbench"], root):
        files = [root / f for f in _ROUTERBENCH_CSVS]
        return load_routerbench(files, on_defect=on_defect, pool=pool or None)
    pkl = root / "routerbench" / "routerbench_0shot.pkl"
    return load_routerbench(pkl, on_defect=on_defect, pool=pool or None, trust_pickle=trust_pickle)


def _llmrouter(root: Path, on_defect: str, pool: Any, trust_pickle: bool) -> RoutingData:
    from llmrouter_core.data.llmrouter import load_dcrouter

    folder = root / "llmrouter"
    queries = [
        f
        for f in (folder / "default_query_train.jsonl", folder / "default_query_test.jsonl")
        if f.is_file()
    ]
    return load_dcrouter(
        [folder / "dcrouter_train.json", folder / "dcrouter_test.json"],
        queries=queries or None,
        pool=folder / "default_llm.json" if pool is None else (pool or None),
        on_defect=on_defect,
        name="llmrouter",
    )


def _llmrouter_nq(root: Path, on_defect: str, pool: Any, trust_pickle: bool) -> RoutingData:
    from llmrouter_core.data.llmrouter import load_llmrouter_nq

    return load_llmrouter_nq(
        root / "llmrouter" / "router_train_data_nq.json", on_defect=on_defect, pool=pool or None
    )


def _routellm_pool(pool: Any) -> Any:
    if pool is None:
        from llmrouter_core.data.routellm import routellm_pool

        return routellm_pool()
    return pool or None


def _routellm_gsm8k(root: Path, on_defect: str, pool: Any, trust_pickle: bool) -> RoutingData:
    from llmrouter_core.data.routellm import load_routellm_csv

    return load_routellm_csv(
        root / "routellm" / "gsm8k" / "gsm8k_responses.csv",
        pool=_routellm_pool(pool),
        on_defect=on_defect,
        name="routellm-gsm8k",
    )


def _routellm_mmlu(root: Path, on_defect: str, pool: Any, trust_pickle: bool) -> RoutingData:
    from llmrouter_core.data.routellm import load_routellm_csv

    return load_routellm_csv(
        [root / f for f in DATASETS["routellm-mmlu"].files],
        pool=_routellm_pool(pool),
        on_defect=on_defect,
        name="routellm-mmlu",
    )


def _routellm_mt_bench(root: Path, on_defect: str, pool: Any, trust_pickle: bool) -> RoutingData:
    from llmrouter_core.data.routellm import load_routellm_mt_bench

    return load_routellm_mt_bench(
        root / "routellm" / "mt_bench",
        pool=_routellm_pool(pool),
        on_defect=on_defect,
        name="routellm-mt-bench",
    )


_LOADERS: dict[str, Callable[[Path, str, Any, bool], RoutingData]] = {
    "routerbench": _routerbench,
    "llmrouter": _llmrouter,
    "llmrouter-nq": _llmrouter_nq,
    "routellm-gsm8k": _routellm_gsm8k,
    "routellm-mmlu": _routellm_mmlu,
    "routellm-mt-bench": _routellm_mt_bench,
}


def load_dataset(
    name_or_path: str | Path,
    *,
    split: str | None = None,
    on_defect: str = "drop",
    data_dir: str | Path | None = None,
    download: bool = False,
    trust_pickle: bool = False,
    pool: Any = None,
) -> RoutingData:
    """Load a named dataset (see :data:`DATASETS`) or, given a path, any supported file.

    Args:
        name_or_path: ``routerbench``, ``llmrouter`` (dcrouter), ``llmrouter-nq``,
            ``routellm-gsm8k``, ``routellm-mmlu``, ``routellm-mt-bench``, or a file / folder
            path (read by :func:`~llmrouter_core.data.load_data`).
        split: Keep only this split (``"train"`` / ``"test"``) after the whole dataset was
            loaded and its defects handled.
        on_defect: ``"drop"`` (default here: these datasets have known defects), ``"keep"`` or
            ``"error"``.
        data_dir: The data folder (default ``$LLMROUTER_DATA_DIR``, else
            ``~/.cache/llmrouter/data``).
        download: Fetch missing files from the publisher (network).
        trust_pickle: Allow RouterBench's official pickles (see
            :func:`~llmrouter_core.data.load_routerbench`).
        pool: Pool used for the unknown-model check and for costs. ``None`` = the dataset's
            own (LLMRouter: its ``default_llm.json``; RouteLLM: :func:`routellm_pool`, prices
            from LiteLLM's bundled table); ``False`` = none (RouteLLM data then has no costs).

    Raises:
        DataError: ``file not found: PATH`` for a path (an argument with a separator or a
            data-file suffix such as ``.csv``) that does not exist, an unknown dataset name
            (the known ones are listed), files missing (with how to get them), or as the
            loaders do.
    """
    key = str(name_or_path)
    if key not in DATASETS:
        path = Path(name_or_path).expanduser()
        if path.exists():
            from llmrouter_core.data.loaders import load_data

            data = load_data(
                path, on_defect=on_defect, pool=pool or None, trust_pickle=trust_pickle
            )
            return data.split(split) if split is not None else data
        if isinstance(name_or_path, Path) or _looks_like_path(key):
            raise DataError(f"file not found: {path}")
        _info(key)  # raises: unknown name
    info = DATASETS[key]
    root = resolve_data_dir(data_dir)
    missing = _missing(info, root)
    if missing and key == "routerbench" and (root / info.downloads[0][1]).is_file():
        missing = []
    if missing:
        if not download:
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            raise DataError(
                f"dataset {key!r} is not in {root} (missing {shown}). Point {DATA_DIR_ENV} or "
                f"data_dir= to a folder that has it, or pass download=True to fetch it from "
                f"{info.source} ({info.license})."
            )
        download_dataset(key, data_dir=root, trust_pickle=trust_pickle)
    with defect_log_level(logging.INFO):  # known, documented defects: kept in meta
        data = _LOADERS[key](root, on_defect, pool, trust_pickle)
    data.meta["dataset"] = key
    if split is not None:
        if data.splits is None:
            raise DataError(f"dataset {key!r} has no splits; load it without split=")
        data = data.split(split)
        data.meta["split"] = split
    return data

"""``llmrouter``: train, route, evaluate and benchmark routers from the command line.

The ``train``, ``route`` and ``list-routers --json`` contracts are relied on by outside
tools; see docs/cli.md.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from llmrouter_core.cli._common import (
    TrustEndpointsOpt,
    check_amount,
    console,
    err_console,
    fail,
    plain,
    read_queries,
    setup_logging,
    user_errors,
)

app = typer.Typer(
    name="llmrouter",
    help="Route each LLM request to the right model of a pool.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

OnDefectOpt = Annotated[
    str,
    typer.Option(
        "--on-defect",
        help="What to do with defective rows (duplicates, missing scores, unknown models): "
        "'drop' them (reported on stderr) or stop with an 'error'.",
    ),
]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging.")]


def _parse_params(params: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in params or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"--param expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _load_pool(path: Path | None) -> Any:
    if path is None:
        return None
    from llmrouter_core.pool import Pool

    return Pool.from_file(path)


def _check_on_defect(on_defect: str) -> None:
    if on_defect not in {"drop", "error"}:
        fail(f"--on-defect must be 'drop' or 'error', got {on_defect!r}")


def _load(data: str, *, on_defect: str, pool: Any, verbose: int) -> Any:
    """Load a data file or named dataset; its defect report is one line on stderr (the whole
    report with -v), not the library's multi-line log."""
    from llmrouter_core.data import DefectReport, defect_log_level, load_dataset

    with defect_log_level(logging.DEBUG):
        loaded = load_dataset(data, on_defect=on_defect, pool=pool)
    raw = loaded.meta.get("defects")
    report = DefectReport.from_dict(raw) if isinstance(raw, dict) else None
    if report is not None and report.has_defects:
        if verbose > 0:
            err_console.print(Text(report.summary()), soft_wrap=True)
        else:
            err_console.print(
                Text.assemble(
                    ("data defects:", "yellow"), f" {report.brief()} (use -v for details)"
                ),
                soft_wrap=True,
            )
    return loaded


def _load_training_data(
    data: str, pool: Any, on_defect: str, split: str | None, verbose: int = 0
) -> Any:
    from llmrouter_core.data import dedupe_train_test

    _check_on_defect(on_defect)
    loaded = _load(data, on_defect=on_defect, pool=pool, verbose=verbose)
    splits = set(loaded.splits or [])
    if split is not None:
        return loaded.split(split)
    if {"train", "test"} <= splits:
        # A file with both splits: train on 'train' only, never on test rows.
        loaded = dedupe_train_test(loaded)
        err_console.print("training on the 'train' split (the data also has a 'test' split)")
        return loaded.split("train")
    return loaded


@app.callback()
def _root() -> None:
    """Route each LLM request to the right model of a pool."""


@app.command("list-routers")
def list_routers_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the registered routers."""
    from llmrouter_core.registry import DEFAULT_ROUTER, list_routers

    with user_errors():
        infos = list_routers()
    if as_json:
        rows = [dict(i.to_dict(), default=i.name == DEFAULT_ROUTER) for i in infos]
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="Routers")
    for col in ("name", "family", "description"):
        table.add_column(col)
    for info in infos:
        label = info.name + (" (default)" if info.name == DEFAULT_ROUTER else "")
        desc = info.description + (" [evaluation only]" if info.evaluation_only else "")
        table.add_row(plain(label), plain(info.family), plain(desc))
    console.print(table)


@app.command()
def train(
    data: Annotated[str, typer.Option("--data", help="Training data file or dataset name.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to save the trained router.")],
    router: Annotated[
        str | None, typer.Option("--router", help="Router name (default: the best default).")
    ] = None,
    pool: Annotated[
        Path | None, typer.Option("--pool", help="Pool file (JSON/YAML) with prices.")
    ] = None,
    split: Annotated[str | None, typer.Option("--split", help="Train on this split only.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Hyperparameter KEY=VALUE (repeatable).")
    ] = None,
    on_defect: OnDefectOpt = "drop",
    verbose: VerboseOpt = 0,
) -> None:
    """Train a router and save it to a directory."""
    from llmrouter_core.registry import DEFAULT_ROUTER, get_router
    from llmrouter_core.saving import check_save_target

    setup_logging(verbose)
    with user_errors():
        check_save_target(out)  # before training, not after
        model = get_router(router or DEFAULT_ROUTER, **_parse_params(param))
        model.check_params()  # a bad --param fails before the data is read
        pool_obj = _load_pool(pool)
        train_data = _load_training_data(data, pool_obj, on_defect, split, verbose)
        with err_console.status(f"training {plain(model.name)} on {train_data.n_queries} queries"):
            start = time.perf_counter()
            # Pool models without training data are left out with one warning; with
            # --on-defect error they stop the training.
            unmeasured = "error" if on_defect == "error" else "warn"
            model.fit(train_data, pool_obj, on_unmeasured=unmeasured)
            seconds = time.perf_counter() - start
        model.save(out)
    err_console.print(
        f"trained [bold]{plain(model.name)}[/] on {train_data.n_queries} queries x "
        f"{len(model.models_)} models in {seconds:.1f}s -> {plain(out)}",
        soft_wrap=True,
    )


@app.command()
def route(
    router_dir: Annotated[Path, typer.Option("--router-dir", help="A trained router directory.")],
    queries: Annotated[Path, typer.Option("--queries", help="JSONL with query_id and query.")],
    output: Annotated[Path, typer.Option("--output", help="Output JSONL path.")],
    sweep: Annotated[
        int | None,
        typer.Option("--sweep", help="Operating points, 0 = cheapest ... N-1 = best quality."),
    ] = None,
    cost_weight: Annotated[
        float | None, typer.Option("--cost-weight", help="One lambda instead of a sweep.")
    ] = None,
    budget: Annotated[
        float | None, typer.Option("--budget", help="Target mean USD per query.")
    ] = None,
    details: Annotated[
        bool, typer.Option("--details", help="Also write cost weight and predictions.")
    ] = False,
    trust_endpoints: TrustEndpointsOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Route queries at one or several operating points; one JSON line per (query, point)."""
    from llmrouter_core.persistence import load_router

    setup_logging(verbose)
    given = sum(x is not None for x in (sweep, cost_weight, budget))
    if given > 1:
        fail("give only one of --sweep, --cost-weight, --budget")
    if sweep is not None and sweep < 1:
        fail("--sweep must be at least 1")
    check_amount(cost_weight, "--cost-weight")
    check_amount(budget, "--budget")
    if output.is_dir():
        fail(f"--output is a directory: {output}")
    with user_errors():
        model = load_router(router_dir, trust_endpoints=trust_endpoints)
        ids, texts = read_queries(queries)
        if sweep is not None:
            weights = model.sweep(sweep)
        elif budget is not None:
            weights = [model.cost_weight_for_budget(budget)]
        else:
            weights = [model.default_cost_weight if cost_weight is None else cost_weight]
        names = model.models_
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".partial")
        chunk = 2048
        from rich.progress import Progress

        try:
            with (
                tmp.open("w", encoding="utf-8") as fh,
                Progress(
                    console=err_console, transient=True, disable=len(texts) <= chunk
                ) as progress,
            ):
                task = progress.add_task("routing", total=len(texts))
                for start in range(0, len(texts), chunk):
                    part = texts[start : start + chunk]
                    q, c = model.predict(part)
                    choices = model.choices(q, c, weights)
                    for i in range(len(part)):
                        qid = ids[start + i]
                        for k, w in enumerate(weights):
                            j = int(choices[k][i])
                            row: dict[str, Any] = {"query_id": qid, "point": k, "model": names[j]}
                            if details:
                                row["cost_weight"] = w if math.isfinite(w) else "inf"
                                row["predicted_quality"] = float(q[i, j])
                                row["predicted_cost"] = float(c[i, j])
                            fh.write(json.dumps(row) + "\n")
                    progress.advance(task, len(part))
            tmp.replace(output)
        except BaseException:  # nothing half-written: no OUT.partial left behind
            tmp.unlink(missing_ok=True)
            raise
    err_console.print(
        f"routed {len(texts)} queries at {len(weights)} operating point(s) -> {plain(output)}",
        soft_wrap=True,
    )


@app.command()
def evaluate(
    router_dir: Annotated[Path, typer.Option("--router-dir", help="A trained router directory.")],
    data: Annotated[str, typer.Option("--data", help="Evaluation data file or dataset name.")],
    split: Annotated[
        str | None, typer.Option("--split", help="Evaluate on this split (default: test if any).")
    ] = None,
    pool: Annotated[Path | None, typer.Option("--pool", help="Pool file for costs.")] = None,
    n_points: Annotated[int, typer.Option("--n-points", help="Operating points.")] = 41,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of the curve.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full result.")] = None,
    on_defect: OnDefectOpt = "drop",
    trust_endpoints: TrustEndpointsOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Evaluate a trained router on measured outcomes: curve, AIQ, oracle gap, per task."""
    from llmrouter_core.evaluation import evaluate as run_evaluation
    from llmrouter_core.evaluation import plot_curves
    from llmrouter_core.persistence import load_router

    setup_logging(verbose)
    _check_on_defect(on_defect)
    if n_points < 1:
        fail("--n-points must be at least 1")
    for option, target in (("--plot", plot), ("--json", json_out)):
        if target is not None and target.is_dir():
            fail(f"{option} is a directory: {target}")
    with user_errors():
        model = load_router(router_dir, trust_endpoints=trust_endpoints)
        pool_obj = _load_pool(pool) or model.pool_
        loaded = _load(data, on_defect=on_defect, pool=pool_obj if pool else None, verbose=verbose)
        if split is None and loaded.splits and "test" in set(loaded.splits):
            split = "test"
        eval_data = loaded.split(split) if split else loaded
        if eval_data.costs is None:
            eval_data = eval_data.with_costs_from_pool(pool_obj)
        result = run_evaluation(model, eval_data, n_points=n_points)
        _print_evaluation(result)
        if plot:
            plot.parent.mkdir(parents=True, exist_ok=True)
            plot_curves([result], plot)
            err_console.print(f"plot -> {plain(plot)}", soft_wrap=True)
        if json_out:
            _write_atomic(json_out, json.dumps(result.to_dict(), indent=2) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _print_evaluation(result: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{plain(result.router)} on {plain(result.dataset)}: AIQ {result.aiq:.4f}")
    table.add_column("point", justify="right")
    table.add_column("cost weight", justify="right")
    table.add_column("mean cost ($)", justify="right")
    table.add_column("mean score", justify="right")
    for k, p in enumerate(result.curve):
        table.add_row(str(k), f"{p.cost_weight:.3g}", f"{p.mean_cost:.6f}", f"{p.mean_score:.4f}")
    console.print(table)
    console.print(
        f"single models' hull AIQ {result.single_hull_aiq:.4f} | oracle AIQ "
        f"{result.oracle_aiq:.4f} | oracle gap closed {result.oracle_gap_closed:.1%}"
    )


@app.command()
def benchmark(
    dataset: Annotated[
        str, typer.Option("--dataset", help="Dataset name or file with train/test splits.")
    ] = "routerbench",
    routers: Annotated[
        str | None, typer.Option("--routers", help="Comma-separated names (default: all).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("runs/benchmark"),
    n_points: Annotated[int, typer.Option("--n-points", help="Operating points.")] = 41,
    verbose: VerboseOpt = 0,
) -> None:
    """Train and evaluate every registered router on a dataset: leaderboard table + plot."""
    from llmrouter_core.benchmark import run_benchmark

    setup_logging(verbose)
    with user_errors():
        names = [r.strip() for r in routers.split(",")] if routers else None
        result = run_benchmark(
            dataset, routers=names, out_dir=out, n_points=n_points, console=err_console
        )
    _print_leaderboard(result["leaderboard"], result["dataset"])
    console.print(
        f"leaderboard -> {plain(out / 'leaderboard.json')}; plot -> {plain(out / 'curves.png')}"
    )


def _print_leaderboard(rows: list[dict[str, Any]], title: str) -> None:
    from rich.table import Table

    table = Table(title=f"Leaderboard: {plain(title)}")
    for col in (
        "rank",
        "router",
        "AIQ",
        "gap closed",
        "best score",
        "cost @ best single",
        "train s",
        "route ms p50",
    ):
        table.add_column(col, justify="right" if col not in ("router",) else "left")

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for row in rows:
        pct = row.get("pct_cost_of_best_single")
        table.add_row(
            str(row["rank"]),
            plain(row["router"]),
            fmt(row["aiq"], ".4f"),
            fmt(row.get("oracle_gap_closed"), ".1%"),
            fmt(row.get("best_score"), ".4f"),
            "-" if pct is None else f"{pct:.0f}%",
            fmt(row.get("train_seconds"), ".1f"),
            fmt(row.get("route_latency_ms"), ".2f"),
        )
    console.print(table)


def _register_extensions() -> None:
    try:
        from llmrouter_core.cli import run_commands
    except ImportError:  # pragma: no cover - execution commands not installed
        return
    run_commands.register(app)
    from llmrouter_core.cli import serve_commands

    serve_commands.register(app)
    from llmrouter_core.cli import datagen_commands

    datagen_commands.register(app)


_register_extensions()


def main() -> None:
    """Entry point of the ``llmrouter`` script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

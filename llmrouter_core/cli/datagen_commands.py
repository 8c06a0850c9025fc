"""``llmrouter datagen``: make routing data by running a pool on benchmark tasks.

``llmrouter datagen --tasks gsm8k,mmlu --models local/smollm2-135m,local/gemma3-270m --out
DIR`` runs every model on every query, scores the answers and writes ``DIR/routing.parquet``
(loadable by ``llmrouter train --data``) and ``DIR/manifest.json``; ``llmrouter datagen
merge --out DIR A B`` joins runs (shards); ``llmrouter datagen tasks`` lists the tasks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from llmrouter_core.cli._common import (
    echo_json,
    err_console,
    fail,
    plain,
    setup_logging,
    user_errors,
)

__all__ = ["register"]

datagen_app = typer.Typer(
    help="Make routing data: run pool models on benchmark tasks and score every answer.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _split_list(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def _pool_for(pool_file: Path | None, models: str | None) -> Any:
    from llmrouter_core.pool import ModelSpec, Pool
    from llmrouter_core.providers.local import LOCAL_PROVIDER, default_local_pool

    if (pool_file is None) == (models is None):
        fail("give exactly one of --pool FILE or --models M1,M2")
    if pool_file is not None:
        return Pool.from_file(pool_file)
    local = default_local_pool()
    specs = []
    for name in _split_list(models):
        short = name.removeprefix(f"{LOCAL_PROVIDER}/")
        if short in local.names:
            specs.append(local[short])
        else:
            specs.append(ModelSpec(name, litellm_model=name))
    if not specs:
        fail("--models names no model")
    return Pool(specs).with_litellm_prices()


@datagen_app.callback()
def datagen(
    ctx: typer.Context,
    tasks: Annotated[
        str | None, typer.Option("--tasks", help="Comma-separated task names (see 'tasks').")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory.")] = None,
    pool: Annotated[Path | None, typer.Option("--pool", help="Pool file of the models.")] = None,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated models (LiteLLM ids or local/<name>)."),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="'auto' (LLMRouter's query files if they hold the task, else the hub), "
            "'llmrouter', 'hub', or a JSONL file.",
        ),
    ] = "auto",
    split: Annotated[
        str, typer.Option("--split", help="Routing splits to draw: train, test or train,test.")
    ] = "train",
    limit: Annotated[
        int | None, typer.Option("--limit", help="Queries per task and split.")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Calls in flight.")] = 1,
    max_cost: Annotated[
        float | None, typer.Option("--max-cost", help="USD this run may spend (never crossed).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out, skipping done calls.")
    ] = False,
    shard: Annotated[
        str | None, typer.Option("--shard", help="i/N: this machine's share of the queries.")
    ] = None,
    temperature: Annotated[float, typer.Option("--temperature")] = 0.0,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Output tokens (default: per task).")
    ] = None,
    rpm: Annotated[
        float | None, typer.Option("--rpm", help="Calls per minute per model.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per call.")] = 120.0,
    describe_with: Annotated[
        str | None,
        typer.Option(
            "--describe-with",
            help="A vision model of the pool that describes images for the other models.",
        ),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True)] = 0,
) -> None:
    """Run the models on the tasks' queries, score every answer, write DIR/routing.parquet."""
    if ctx.invoked_subcommand is not None:
        return
    from llmrouter_core.datagen.runner import generate, parse_shard

    setup_logging(verbose)
    if not tasks or out is None:
        fail("give --tasks and --out (and --pool or --models); see 'llmrouter datagen --help'")
    if limit is not None and limit < 1:
        fail("--limit must be at least 1")
    if concurrency < 1:
        fail("--concurrency must be at least 1")
    if max_cost is not None and not (math.isfinite(max_cost) and max_cost >= 0):
        fail("--max-cost must be a non-negative number of USD")
    if not (math.isfinite(temperature) and temperature >= 0):
        fail("--temperature must be a finite number >= 0")
    if rpm is not None and not (math.isfinite(rpm) and rpm > 0):
        fail("--rpm must be a number > 0")
    splits = _split_list(split)
    if not splits or any(s not in ("train", "test") for s in splits):
        fail(f"--split takes train, test or train,test, got {split!r}")
    with user_errors():
        pool_obj = _pool_for(pool, models)
        result = generate(
            _split_list(tasks),
            pool_obj,
            out,
            splits=splits,
            limit=limit,
            source=source,
            concurrency=concurrency,
            max_cost=max_cost,
            resume=resume,
            shard=parse_shard(shard),
            temperature=temperature,
            max_tokens=max_tokens,
            rpm=rpm,
            timeout=timeout,
            describe_with=describe_with,
            progress=progress,
        )
    _summary(result.manifest)
    err_console.print(
        f"{result.calls} calls ({result.errors} failed, {result.skipped} already done), "
        f"${result.cost:.4f} -> {plain(result.routing_file)}",
        soft_wrap=True,
    )
    if result.stopped:
        err_console.print(f"stopped early: {result.stopped}; continue with --resume")


def _summary(manifest: dict[str, Any]) -> None:
    from rich.table import Table

    scores = manifest.get("mean_score", {})
    models = sorted({m for per in scores.values() for m in per})
    table = Table("task", *models, title="mean score")
    for task, per in sorted(scores.items()):
        table.add_row(plain(task), *(f"{per[m]:.3f}" if m in per else "-" for m in models))
    err_console.print(table)


@datagen_app.command("merge")
def merge_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Output directories of the runs.")],
    out: Annotated[Path, typer.Option("--out", help="Directory of the merged data.")],
) -> None:
    """Join several runs (e.g. shards) into one routing.parquet."""
    from llmrouter_core.datagen.runner import merge

    with user_errors():
        manifest = merge(out, inputs)
    counts = manifest["counts"]
    err_console.print(
        f"merged {len(inputs)} runs: {counts['queries']} queries, {counts['rows']} rows "
        f"({counts['errors']} failed) -> {plain(out)}",
        soft_wrap=True,
    )


@datagen_app.command("rescore")
def rescore_cmd(
    out: Annotated[Path, typer.Argument(help="Output directory of a run.")],
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Score the stored answers again with the current metrics (no model is called)."""
    from llmrouter_core.datagen.runner import rescore

    with user_errors():
        manifest = rescore(out, progress=progress)
    _summary(manifest)


@datagen_app.command("tasks")
def tasks_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the registered tasks."""
    from llmrouter_core.datagen.tasks import get_task, list_tasks

    rows = []
    for name in list_tasks():
        task = get_task(name)
        hub = task.hub.path if task.hub is not None else None
        rows.append({"name": name, "metric": task.metric_name, "hub": hub,
                     "description": task.description})  # fmt: skip
    if as_json:
        echo_json(rows)
        return
    from rich.table import Table

    table = Table("task", "metric", "hub dataset", "description")
    for r in rows:
        table.add_row(*(plain(r[k] or "-") for k in ("name", "metric", "hub", "description")))
    err_console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``datagen`` to the ``llmrouter`` app."""
    app.add_typer(datagen_app, name="datagen")

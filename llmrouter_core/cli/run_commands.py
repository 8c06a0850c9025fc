"""``llmrouter infer`` and ``llmrouter chat``: route, then answer with the chosen model.

Both load a trained router (``--router-dir``) and execute through
:class:`~llmrouter_core.execution.Executor`: retries, fallbacks down the ranking, budgets.
``--pool`` calls the router's models through other endpoints (a pool file with the same
model names); ``--replay DATA`` answers with the responses the models gave in a recorded
dataset (``replay/<model>``), so everything runs offline. Without ``--router-dir`` and with
no API key configured, the local CPU models answer (``local`` extra).
"""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llmrouter_core.cli._common import (
    TrustEndpointsOpt,
    check_amount,
    echo_json,
    err_console,
    fail,
    parse_json,
    plain,
    read_text,
    setup_logging,
    text_lines,
    user_errors,
)

__all__ = ["chat", "infer", "register"]

RouterDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--router-dir",
        "-r",
        help="A trained router directory (default: the local models, when no API key is set).",
    ),
]
PoolOpt = Annotated[
    Path | None,
    typer.Option("--pool", help="Pool file: call the router's models through these endpoints."),
]
ReplayOpt = Annotated[
    str | None,
    typer.Option(
        "--replay",
        help="Answer with the responses recorded in this dataset (a path or a name such as "
        "'routerbench'); every model is called as replay/<name>.",
    ),
]
CostWeightOpt = Annotated[
    float | None,
    typer.Option("--cost-weight", help="lambda in quality - lambda x cost ('inf' = cheapest)."),
]
MaxCostOpt = Annotated[float | None, typer.Option("--max-cost", help="Per-request cap in USD.")]
BudgetOpt = Annotated[
    float | None, typer.Option("--budget", help="Total USD this run may spend (never exceeded).")
]
MaxTokensOpt = Annotated[
    int | None, typer.Option("--max-tokens", help="Maximum output tokens per answer.")
]
TemperatureOpt = Annotated[
    float | None, typer.Option("--temperature", help="Sampling temperature.")
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per model call.")]
RetriesOpt = Annotated[
    int, typer.Option("--max-retries", help="Retries of a model on transient errors.")
]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging.")]


# -- shared setup ----------------------------------------------------------------------------


def _quiet_litellm() -> None:
    """LiteLLM prints help banners to stdout on errors; the CLI's stdout carries answers."""
    from llmrouter_core._lazy import import_litellm

    litellm = import_litellm()
    setattr(litellm, "suppress_debug_info", True)  # noqa: B010 - a module attribute


def _build_executor(
    router_dir: Path | None,
    pool_file: Path | None,
    replay: str | None,
    *,
    budget: float | None,
    cost_weight: float | None,
    timeout: float,
    max_retries: int,
    routing_text: Any = "last_user",
    trust_endpoints: bool = False,
) -> Any:
    from llmrouter_core.execution import Executor
    from llmrouter_core.pool import Pool

    if router_dir is not None:
        from llmrouter_core.persistence import load_router

        router: Any = load_router(router_dir, trust_endpoints=trust_endpoints)
    else:
        from llmrouter_core.providers.local import default_pool, local_models_available

        local = default_pool()
        if local is None:
            fail("give --router-dir: API keys are configured, so there is no default pool")
        available = local_models_available()
        if not available:
            fail(
                "no --router-dir and the local models are not installed; install them with "
                "scripts/install_local.sh (pip install 'llmrouter-core[local]') or give "
                "--router-dir"
            )
        from llmrouter_core.datagen.default_router import default_local_router

        router = default_local_router(available)
    pool = None
    if pool_file is not None:
        pool = Pool.from_file(pool_file)
    if replay is not None:
        from llmrouter_core.providers.replay import replay_pool, set_replay_data

        set_replay_data(replay)
        pool = replay_pool(pool if pool is not None else router.pool_)
    if pool is not None:
        missing = [m for m in router.models_ if m not in pool]
        if missing:
            fail(f"the pool file lacks the router's models: {', '.join(missing)}")
    _quiet_litellm()
    return Executor(
        router,
        pool=pool,
        budget=budget,
        cost_weight=cost_weight,
        timeout=timeout,
        max_retries=max_retries,
        routing_text=routing_text,
    )


def _call_kwargs(max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    if temperature is not None:
        out["temperature"] = temperature
    return out


def _read_inputs(path: Path) -> list[Any]:
    """Queries from a file: ``.jsonl`` (``query``/``question``/``prompt`` string or
    ``messages`` list per line), ``.json`` (a list of those or of strings), else one query per
    non-empty line. Every problem fails with one line naming the file and line (or item)."""
    text = read_text(path, "input file")
    suffix = path.suffix.lower()
    items: list[Any] = []
    if suffix == ".json":
        raw = parse_json(text, str(path))
        if not isinstance(raw, list):
            fail(f"{path}: expected a JSON list of queries")
        items = [_one_input(x, f"{path} item {i + 1}") for i, x in enumerate(raw)]
    elif suffix == ".jsonl":
        for lineno, line in text_lines(text):
            if line.strip():
                where = f"{path}:{lineno}"
                items.append(_one_input(parse_json(line, where), where))
    else:
        items = [line for _, line in text_lines(text) if line.strip()]
    if not items:
        fail(f"{path} has no queries")
    return items


def _one_input(row: Any, where: str) -> Any:
    if isinstance(row, dict):
        for key in ("query", "question", "prompt"):
            if isinstance(row.get(key), str):
                row = row[key]
                break
        else:
            messages = row.get("messages")
            if isinstance(messages, list) and messages:
                return messages
    if isinstance(row, str):
        if not row.strip():
            fail(f"{where}: empty query")
        return row
    fail(
        f"{where}: expected a string or an object with 'query', 'question', 'prompt' or "
        "a non-empty 'messages' list"
    )


def _check_numbers(
    *,
    cost_weight: float | None,
    max_cost: float | None,
    budget: float | None,
    max_tokens: int | None,
    temperature: float | None,
    timeout: float,
    max_retries: int,
) -> None:
    """Fail with one line on a numeric option out of range (before anything slow runs)."""
    check_amount(cost_weight, "--cost-weight")
    check_amount(max_cost, "--max-cost")
    check_amount(budget, "--budget")
    if max_tokens is not None and max_tokens < 1:
        fail("--max-tokens must be at least 1")
    if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
        fail(f"--temperature must be a finite number >= 0, got {temperature}")
    if not (math.isfinite(timeout) and timeout > 0):
        fail(f"--timeout must be a finite number of seconds > 0, got {timeout}")
    if max_retries < 0:
        fail("--max-retries must be at least 0")


def _result_json(result: Any) -> dict[str, Any]:
    return {
        "model": result.model,
        "answer": result.answer,
        "cost": result.cost,
        "attempts": [a.to_dict() for a in result.attempts],
    }


def _error_json(exc: Exception) -> dict[str, Any]:
    attempts = getattr(exc, "attempts", ()) or ()
    return {
        "model": None,
        "answer": None,
        "cost": 0.0,
        "attempts": [a.to_dict() for a in attempts],
        "error": f"{type(exc).__name__}: {exc}",
    }


def _decision_json(decision: Any) -> dict[str, Any]:
    out: dict[str, Any] = decision.to_dict()

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return {k: clean(v) for k, v in out.items()}


# -- infer -----------------------------------------------------------------------------------


def infer(
    question: Annotated[str | None, typer.Argument(help="The question to answer.")] = None,
    router_dir: RouterDirOpt = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Answer every query of a file (.txt, .jsonl, .json)."),
    ] = None,
    route_only: Annotated[
        bool, typer.Option("--route-only", help="Print the routing decision; call no model.")
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help='One JSON object per query: {"model", "answer", "cost", "attempts"}.'
        ),
    ] = False,
    pool_file: PoolOpt = None,
    replay: ReplayOpt = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Call this pool model instead of routing.")
    ] = None,
    cost_weight: CostWeightOpt = None,
    max_cost: MaxCostOpt = None,
    budget: BudgetOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Queries answered at once (with --input).")
    ] = 4,
    timeout: TimeoutOpt = 60.0,
    max_retries: RetriesOpt = 2,
    trust_endpoints: TrustEndpointsOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Route a question (or a file of them) and answer it with the chosen model."""
    setup_logging(verbose)
    if (question is None) == (input_file is None):
        fail("give either a question or --input FILE")
    if concurrency < 1:
        fail("--concurrency must be at least 1")
    if route_only and model is not None:
        fail("--route-only and --model do not go together")
    _check_numbers(
        cost_weight=cost_weight,
        max_cost=max_cost,
        budget=budget,
        max_tokens=max_tokens,
        temperature=temperature,
        timeout=timeout,
        max_retries=max_retries,
    )
    kwargs = _call_kwargs(max_tokens, temperature)
    # Every cheap check (arguments, the input file) before the router and replay data load.
    queries: list[Any] = [question] if input_file is None else _read_inputs(input_file)
    if question is not None and not question.strip():
        fail("the question is empty")
    failed = 0
    with user_errors():
        executor = _build_executor(
            router_dir,
            pool_file,
            replay,
            budget=budget,
            cost_weight=cost_weight,
            timeout=timeout,
            max_retries=max_retries,
            trust_endpoints=trust_endpoints,
        )
        if route_only:
            for q in queries:
                decision = executor.route(q, max_cost=max_cost, **kwargs)
                if json_output:
                    echo_json(_decision_json(decision))
                else:
                    _print_decision(decision)
            return
        if len(queries) == 1:
            try:
                result = executor.complete(queries[0], model=model, max_cost=max_cost, **kwargs)
            except Exception as exc:
                if json_output and hasattr(exc, "attempts"):
                    echo_json(_error_json(exc))
                    raise typer.Exit(1) from None
                raise
            if json_output:
                echo_json(_result_json(result))
            else:
                _print_result(result)
            return
        failed = asyncio.run(
            _infer_batch(executor, queries, model, max_cost, kwargs, json_output, concurrency)
        )
    if failed:
        err_console.print(f"[red]{failed} of {len(queries)} queries failed[/]")
        raise typer.Exit(1)


async def _infer_batch(
    executor: Any,
    queries: list[Any],
    model: str | None,
    max_cost: float | None,
    kwargs: dict[str, Any],
    json_output: bool,
    concurrency: int,
) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    results: list[dict[str, Any] | None] = [None] * len(queries)
    next_out = 0
    failed = 0
    sem = asyncio.Semaphore(concurrency)

    def flush() -> None:
        # Print in input order as soon as the earliest pending answers are in.
        nonlocal next_out
        while next_out < len(results) and results[next_out] is not None:
            row = results[next_out]
            assert row is not None
            if json_output:
                echo_json(row)
            else:
                _print_row(next_out, row)
            next_out += 1

    with Progress(
        TextColumn("answering"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("answering", total=len(queries))

        async def one(i: int, q: Any) -> None:
            nonlocal failed
            async with sem:
                try:
                    res = await executor.acomplete(q, model=model, max_cost=max_cost, **kwargs)
                    results[i] = _result_json(res)
                except Exception as exc:  # one failed query does not stop a batch
                    failed += 1
                    results[i] = _error_json(exc)
            progress.advance(task)
            flush()

        await asyncio.gather(*(one(i, q) for i, q in enumerate(queries)))
    flush()
    return failed


def _print_decision(decision: Any) -> None:
    sys.stdout.write(f"{decision.model}\n")
    err_console.print(f"[dim]{plain(decision.reason)}[/]")
    ranked = ", ".join(decision.ranked)
    err_console.print(f"[dim]ranked: {plain(ranked)}[/]")


def _print_result(result: Any) -> None:
    sys.stdout.write(result.answer.rstrip("\n") + "\n")
    sys.stdout.flush()
    tries = len([a for a in result.attempts if a.outcome != "skipped"])
    note = _fallback_note(result)
    err_console.print(
        f"[dim]{plain(result.model)}{plain(note)} · ${result.cost:.6g} · {result.input_tokens}+"
        f"{result.output_tokens} tokens · {result.latency_s:.2f}s · {tries} call(s)[/]"
    )


def _fallback_note(result: Any) -> str:
    if result.decision is not None and result.fell_back:
        return f" (fell back from {result.decision.model})"
    return ""


def _print_row(i: int, row: dict[str, Any]) -> None:
    if row.get("error"):
        err_console.print(f"[red]query {i + 1} failed:[/] {plain(row['error'])}")
        return
    sys.stdout.write(f"[{i + 1}] {row['model']} (${row['cost']:.6g})\n{row['answer']}\n\n")


# -- chat ------------------------------------------------------------------------------------


def chat(
    router_dir: RouterDirOpt = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="Context sent with each query: current_only, full_context, or retrieval "
            "(the --top-k most similar earlier turns).",
        ),
    ] = "current_only",
    top_k: Annotated[int, typer.Option("--top-k", help="Turns kept in retrieval mode.")] = 3,
    system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
    pool_file: PoolOpt = None,
    replay: ReplayOpt = None,
    cost_weight: CostWeightOpt = None,
    max_cost: MaxCostOpt = None,
    budget: BudgetOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Stream answers.")] = True,
    timeout: TimeoutOpt = 60.0,
    max_retries: RetriesOpt = 2,
    trust_endpoints: TrustEndpointsOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Chat in the terminal; each turn is routed. End a line with \\ to continue it.

    Commands: /mode MODE, /reset, /exit.
    """
    from llmrouter_core.execution import Conversation, ExecutionError, ExecutionResult

    setup_logging(verbose)
    _check_numbers(
        cost_weight=cost_weight,
        max_cost=max_cost,
        budget=budget,
        max_tokens=max_tokens,
        temperature=temperature,
        timeout=timeout,
        max_retries=max_retries,
    )
    kwargs = _call_kwargs(max_tokens, temperature)
    with user_errors():
        conversation = Conversation(mode, top_k=top_k, system=system)
        executor = _build_executor(
            router_dir,
            pool_file,
            replay,
            budget=budget,
            cost_weight=cost_weight,
            timeout=timeout,
            max_retries=max_retries,
            trust_endpoints=trust_endpoints,
            routing_text=Conversation.routing_text,
        )
    interactive = sys.stdin.isatty()
    err_console.print(
        f"[dim]chat · context: {plain(conversation.mode)} · models: "
        f"{plain(', '.join(executor.models))} · "
        "/mode MODE, /reset, /exit[/]"
    )
    while True:
        if interactive:
            err_console.print("[bold]>[/] ", end="")
        line = _read_turn()
        if line is None:
            break
        query = line.strip()
        if not query:
            continue
        if query in ("/exit", "/quit"):
            break
        if query == "/reset":
            conversation.reset()
            err_console.print("[dim]conversation cleared[/]")
            continue
        if query.startswith("/mode"):
            with user_errors():
                conversation = _switch_mode(conversation, query[5:].strip())
            err_console.print(f"[dim]context: {plain(conversation.mode)}[/]")
            continue
        messages = conversation.messages_for(query)
        try:
            if stream:
                result: ExecutionResult | None = None
                for item in executor.stream(messages, max_cost=max_cost, **kwargs):
                    if isinstance(item, ExecutionResult):
                        result = item
                    else:
                        sys.stdout.write(item.text)
                        sys.stdout.flush()
                sys.stdout.write("\n")
                assert result is not None
            else:
                result = executor.complete(messages, max_cost=max_cost, **kwargs)
                sys.stdout.write(result.answer + "\n")
            sys.stdout.flush()
        except (ExecutionError, Exception) as exc:  # the chat goes on
            sys.stdout.write("\n")
            err_console.print(f"[red]error:[/] {plain(exc)}")
            continue
        conversation.add(query, result.answer)
        note = _fallback_note(result)
        err_console.print(f"[dim]{plain(result.model)}{plain(note)} · ${result.cost:.6g}[/]")


def _read_turn() -> str | None:
    """One turn from stdin; a line ending in a backslash continues on the next line."""
    parts: list[str] = []
    while True:
        line = sys.stdin.readline()
        if not line:
            return "\n".join(parts) if parts else None
        line = line.rstrip("\r\n")
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        return "\n".join(parts)


def _switch_mode(conversation: Any, mode: str) -> Any:
    from llmrouter_core.execution import Conversation

    new = Conversation(mode, top_k=conversation.top_k, system=conversation.system)
    new.turns = list(conversation.turns)
    return new


def register(app: typer.Typer) -> None:
    """Add ``infer`` and ``chat`` to the ``llmrouter`` app."""
    app.command("infer")(infer)
    app.command("chat")(chat)

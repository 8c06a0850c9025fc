"""``llmrouter infer --flow agentic|multi-round``: answer with a routing flow.

``agentic`` decomposes the question (``--decomposer structural|llm``), routes each part
with the cost knob, answers the parts in parallel and aggregates (``--aggregate
concat|llm``); ``multi-round`` lets ``--policy-model`` consult the pool. The answer goes to
stdout, the steps to stderr; ``--json`` prints ``{"answer", "models", "cost", "stopped",
"steps"}`` (``cost`` in USD, every call counted).
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Any

import typer

from llmrouter_core.cli._common import echo_json, err_console, fail, plain

__all__ = [
    "AggregateOpt",
    "DecomposerOpt",
    "FlowName",
    "FlowOpt",
    "MaxRoundsOpt",
    "PolicyModelOpt",
    "check_flow_options",
    "run_flows",
]


class FlowName(str, Enum):
    """The flows of ``infer --flow``."""

    agentic = "agentic"
    multi_round = "multi-round"


class DecomposerName(str, Enum):
    structural = "structural"
    llm = "llm"


class AggregateName(str, Enum):
    concat = "concat"
    llm = "llm"


FlowOpt = Annotated[
    FlowName | None,
    typer.Option("--flow", help="Answer with a routing flow instead of one routed call."),
]
DecomposerOpt = Annotated[
    DecomposerName,
    typer.Option("--decomposer", help="How --flow agentic splits the question."),
]
AggregateOpt = Annotated[
    AggregateName,
    typer.Option("--aggregate", help="How --flow agentic joins the parts' answers."),
]
PolicyModelOpt = Annotated[
    str | None,
    typer.Option(
        "--policy-model",
        help="The pool model that plans: the policy of --flow multi-round (required there), "
        "the decomposer and aggregator of --flow agentic with llm (default: routed).",
    ),
]
MaxRoundsOpt = Annotated[
    int, typer.Option("--max-rounds", help="Most consultations of --flow multi-round.")
]


def check_flow_options(flow: FlowName, policy_model: str | None, max_rounds: int) -> None:
    """The flow options' checks that need no router (made before anything loads)."""
    if flow is FlowName.multi_round and policy_model is None:
        fail("--flow multi-round needs --policy-model (a pool model)")
    if max_rounds < 0:
        fail("--max-rounds must be >= 0")


def run_flows(
    executor: Any,
    queries: list[Any],
    *,
    flow: FlowName,
    decomposer: DecomposerName,
    aggregate: AggregateName,
    policy_model: str | None,
    max_rounds: int,
    cost_weight: float | None,
    max_cost: float | None,
    json_output: bool,
    verbose: int,
) -> int:
    """Answer ``queries`` one by one with ``flow``; returns how many failed."""
    from llmrouter_core.flows import agentic, multi_round

    check_flow_options(flow, policy_model, max_rounds)
    if policy_model is not None and policy_model not in executor.pool.names:
        fail(
            f"unknown --policy-model {policy_model!r}; "
            f"the pool has: {', '.join(executor.pool.names)}"
        )
    failed = 0
    for q in queries:
        text = (
            q if isinstance(q, str) else str(q.get("query", q)) if isinstance(q, dict) else str(q)
        )
        on_step = _print_step if verbose > 0 and not json_output else None
        if flow is FlowName.agentic:
            result = agentic(
                text,
                executor=executor,
                decomposer=decomposer.value,  # type: ignore[arg-type]
                aggregate=aggregate.value,  # type: ignore[arg-type]
                cost_weight=cost_weight,
                max_cost=max_cost,
                plan_model=policy_model,
                aggregate_model=policy_model,
                on_step=on_step,
            )
        else:
            assert policy_model is not None
            result = multi_round(
                text,
                executor=executor,
                policy_model=policy_model,
                max_rounds=max_rounds,
                max_cost=max_cost,
                on_step=on_step,
            )
        if json_output:
            echo_json(result.to_dict())
        else:
            sys.stdout.write(result.answer.rstrip("\n") + "\n")
            models = ", ".join(result.models) or "none"
            err_console.print(
                f"[dim]{len(result.steps)} steps, models: {plain(models)}, "
                f"cost ${result.cost:.6g}[/]"
            )
            if result.stopped:
                err_console.print(f"[yellow]stopped: {plain(result.stopped)}[/]")
        failed += int(not result.answer)
    return failed


def _print_step(step: Any) -> None:
    cost = "" if step.cost is None else f" ${step.cost:.6g}"
    error = f" [red]{plain(step.error)}[/]" if step.error else ""
    err_console.print(
        f"[dim]{step.role} {plain(step.model or '-')}{cost}: {plain(step.why)}[/]{error}"
    )

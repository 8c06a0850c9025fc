"""Multi-round and agentic routing flows on the :class:`~llmrouter_core.execution.Executor`.

* :func:`agentic` / :func:`aagentic`: decompose a question (structurally or with a model),
  route each part with the cost knob, answer the parts in parallel, aggregate.
* :func:`multi_round` / :func:`amulti_round`: a policy model consults pool models (native
  tool calls, or Router-R1's tags) and answers.
* :func:`router_r1_reward`, :func:`export_trajectories`: evaluate trajectories and export
  them for training a policy.

Every flow returns a :class:`FlowResult` (answer, :class:`FlowStep` list, USD cost of every
call, models, ``stopped``); ``on_step`` sees each step as it finishes.
"""

from __future__ import annotations

from llmrouter_core.flows.agentic import aagentic, agentic, concat_answer
from llmrouter_core.flows.composite import (
    Composite,
    composite_text,
    flow_outcome,
    make_composites,
    single_outcome,
)
from llmrouter_core.flows.decompose import PARTS_SCHEMA, parse_parts, structural_parts
from llmrouter_core.flows.multiround import (
    amulti_round,
    consult_tool,
    multi_round,
    parse_tag_turn,
    tags_system_prompt,
)
from llmrouter_core.flows.reward import (
    CostWindow,
    exact_match,
    export_trajectories,
    normalize_answer,
    router_r1_reward,
    token_f1,
)
from llmrouter_core.flows.steps import FlowResult, FlowStep

__all__ = [
    "PARTS_SCHEMA",
    "Composite",
    "CostWindow",
    "FlowResult",
    "FlowStep",
    "aagentic",
    "agentic",
    "amulti_round",
    "composite_text",
    "concat_answer",
    "consult_tool",
    "exact_match",
    "export_trajectories",
    "flow_outcome",
    "make_composites",
    "multi_round",
    "normalize_answer",
    "parse_parts",
    "parse_tag_turn",
    "router_r1_reward",
    "single_outcome",
    "structural_parts",
    "tags_system_prompt",
    "token_f1",
]

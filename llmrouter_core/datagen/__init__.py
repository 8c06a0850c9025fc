"""Making routing data: run a pool's models on benchmark tasks, score every answer, keep
the cost, tokens and latency of every call.

* :mod:`~llmrouter_core.datagen.tasks`: the task registry (11 benchmarks, CommonGen, your
  own tasks by entry point or dotted path): source, prompt template, gold answer, metric.
* :mod:`~llmrouter_core.datagen.sources`: the publishers' hub datasets (``datasets``),
  LLMRouter's query files, your JSONL.
* :mod:`~llmrouter_core.datagen.metrics`: exact match and token F1, option letters, GSM8K
  numbers, MATH equivalence, CommonGen coverage, code pass@1.
* :mod:`~llmrouter_core.datagen.sandbox`: model-written code runs only there.
* :mod:`~llmrouter_core.datagen.runner`: :func:`generate` (resumable, a cost ceiling,
  shards), :func:`merge`, :func:`rescore`, :func:`export`.

The command line is ``llmrouter datagen`` (see ``docs/datagen.md``).
"""

from llmrouter_core.datagen.runner import DatagenResult, export, generate, merge, rescore
from llmrouter_core.datagen.sandbox import Sandbox, SandboxResult, available_isolation
from llmrouter_core.datagen.sources import HubSpec, load_examples
from llmrouter_core.datagen.tasks import Example, Task, get_task, list_tasks, register_task

__all__ = [
    "DatagenResult",
    "Example",
    "HubSpec",
    "Sandbox",
    "SandboxResult",
    "Task",
    "available_isolation",
    "export",
    "generate",
    "get_task",
    "list_tasks",
    "load_examples",
    "merge",
    "register_task",
    "rescore",
]

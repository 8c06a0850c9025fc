"""A DSPy program optimized twice and shipped: few-shot demos with DSPy's own
``BootstrapFewShot``, then a model per stage with ``ModelAssignmentOptimizer``; saved with
``program.save`` and loaded back with ``load_program``.

``WordProblem`` has two stages: ``extract`` turns a question into an arithmetic expression,
``compute`` evaluates it. The pool has a cheap and an expensive model; the cheap one writes
expressions well but miscomputes large products. ``BootstrapFewShot`` keeps demos of
successful runs (DSPy's chat adapter renders them into every later prompt), then
``ModelAssignmentOptimizer`` gives each stage the model (or the router's setting) that
maximises ``accuracy - lambda x cost``: the cheap model for ``extract``, the expensive one
for ``compute``. The router reads each stage's input fields, not DSPy's formatted prompt.

Runs offline: the two models are rule-based stand-ins (``ScriptedProvider``, not language
models) that answer in DSPy's chat format, charged per token at the pool's prices; the router
is ``dummy_router`` (fixed predictions). With API keys, give a real pool and a trained router.

Usage:
    python examples/dspy_bootstrap_and_assign.py
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy
from dspy_llmrouter import ModelAssignmentOptimizer, RoutedLM, assignment_of, load_program

from llmrouter_core.testing import ScriptedProvider, dummy_router
from llmrouter_core.testing.provider import ScriptedCall

CHEAP, STRONG = "cheap", "strong"
_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ##|\n\nRespond|\Z)", re.DOTALL)


class Arithmetic:
    """A stand-in model: reads the last request's input fields, answers in DSPy's format.
    ``careless`` models get products above 1000 wrong by one."""

    def __init__(self, careless: bool) -> None:
        self.careless = careless

    def respond(self, call: ScriptedCall) -> str:
        fields = dict(_FIELD.findall(str(call.messages[-1]["content"])))
        if "question" in fields:
            a, b = re.findall(r"\d+", fields["question"])[:2]
            op = "+" if re.search(r"\b(plus|add|sum)\b", fields["question"]) else "*"
            return f"[[ ## expression ## ]]\n{a} {op} {b}\n\n[[ ## completed ## ]]"
        a, op, b = fields["expression"].split()
        value = int(a) + int(b) if op == "+" else int(a) * int(b)
        if self.careless and op == "*" and value > 1000:
            value += 1
        return f"[[ ## answer ## ]]\n{value}\n\n[[ ## completed ## ]]"


class WordProblem(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.extract = dspy.Predict("question -> expression")
        self.compute = dspy.Predict("expression -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        expression = self.extract(question=question).expression
        return self.compute(expression=expression)


def exact(example: dspy.Example, prediction: dspy.Prediction, trace: Any = None) -> bool:
    return str(prediction.answer).strip() == example.answer


def problems(pairs: list[tuple[int, int, str]]) -> list[dspy.Example]:
    out = []
    for a, b, op in pairs:
        words = "plus" if op == "+" else "times"
        value = a + b if op == "+" else a * b
        example = dspy.Example(question=f"What is {a} {words} {b}?", answer=str(value))
        out.append(example.with_inputs("question"))
    return out


TRAIN = problems([(12, 7, "+"), (37, 91, "*"), (45, 3, "*"), (120, 340, "+"), (58, 77, "*")])
HELD_OUT = problems([(23, 19, "*"), (301, 44, "+"), (64, 88, "*"), (9, 8, "*")])


def main(cost_weight: float = 5.0) -> dict[str, Any]:
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    provider = ScriptedProvider({CHEAP: Arithmetic(careless=True), STRONG: Arithmetic(False)})
    pool = provider.pool(prices={CHEAP: 0.5, STRONG: 30.0})  # USD per 1M tokens
    router = dummy_router({CHEAP: 0.7, STRONG: 0.9}, {CHEAP: 1e-5, STRONG: 1e-3}, pool)
    lm = RoutedLM(router)
    dspy.configure(lm=lm, adapter=dspy.ChatAdapter())

    optimizer = ModelAssignmentOptimizer(
        exact,
        lm,
        cost_weight,
        models=[CHEAP, STRONG],
        router_weights=[0.0],
        teleprompter=dspy.BootstrapFewShot(metric=exact, max_bootstrapped_demos=2),
    )
    tuned = optimizer.compile(WordProblem(), trainset=TRAIN)
    print(f"chosen on {len(TRAIN)} problems: {optimizer.best_.describe()}")
    demos = {name: len(p.demos) for name, p in tuned.named_predictors()}
    print(f"bootstrapped demos per stage: {demos}")

    with tempfile.TemporaryDirectory() as tmp:  # the demos and the models travel with it
        tuned.save(Path(tmp) / "word_problem.json")
        loaded = load_program(WordProblem(), Path(tmp) / "word_problem.json", router=router)

    results = {
        "tuned": optimizer.evaluate(tuned, HELD_OUT),
        "loaded": optimizer.evaluate(loaded, HELD_OUT),
    }
    for name, score in results.items():
        print(f"{name:>7}: accuracy {score.quality:.2f}, ${score.cost:.6f} per problem")
    return {
        "assignment": assignment_of(loaded),
        "demos": {name: len(p.demos) for name, p in loaded.named_predictors()},
        "results": results,
        "calls": provider.calls,
    }


if __name__ == "__main__":
    main()

"""DSPy programs as users write them: a bare ``dspy.Predict`` saved with ``program.save`` loads
back with ``load_program`` (its state is flat), and with DSPy's default ``ChatAdapter`` the
router reads the input fields' text, not the formatted prompt."""

from __future__ import annotations

from typing import Any

import dspy
import pytest
from dspy_llmrouter import RoutedLM, load_program
from dspy_llmrouter._lm import input_fields_text

from llmrouter_core.testing import ScriptedProvider, dummy_router

REPLY = "[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"


def _decision(lm: RoutedLM) -> dict[str, Any]:
    return lm.history[-1]["response"]._hidden_params["llmrouter"]["decision"]


def test_a_bare_predict_saved_flat_loads_back(tmp_path: Any) -> None:
    provider = ScriptedProvider({"small": REPLY, "large": REPLY})
    pool = provider.pool()
    router = dummy_router({"small": 0.6, "large": 0.9}, {"small": 0.0001, "large": 0.01}, pool)
    program = dspy.Predict("question -> answer")
    program.set_lm(RoutedLM(router, cost_weight=50.0, model="large"))
    program.save(tmp_path / "predict.json")

    loaded = load_program(
        dspy.Predict("question -> answer"), tmp_path / "predict.json", router=router
    )
    assert isinstance(loaded.lm, RoutedLM)
    assert loaded.lm.kwargs.get("cost_weight") == 50.0
    assert loaded(question="What is 2 + 2?").answer == "4"
    assert loaded.lm.history[-1]["response_model"] == "large"  # the saved pin
    # DSPy's own loader still refuses the custom LM class (it imports nothing unsafe)
    with pytest.raises(Exception, match="RoutedLM"):
        dspy.Predict("question -> answer").load(tmp_path / "predict.json")


def test_the_router_reads_the_input_fields_not_the_chat_format(
    knn_router: Any, mc_split: dict[str, Any]
) -> None:
    provider = ScriptedProvider(dict.fromkeys(knn_router.models_, REPLY))
    lm = RoutedLM(knn_router, pool=provider.pool())
    question = mc_split["test"].queries[0]
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        assert dspy.Predict("question -> answer")(question=question).answer == "4"
    sent = provider.calls[-1].messages
    assert "[[ ## question ## ]]" in sent[-1]["content"]  # the model gets DSPy's format ...
    assert input_fields_text(sent) == question.strip()  # ... the router reads the question
    expected = knn_router.route(question.strip())
    decision = _decision(lm)
    assert decision["model"] == expected.model
    assert decision["quality"] == pytest.approx(expected.quality)
    # two input fields: both values, in order, without markers or output instructions
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        dspy.Predict("context, question -> answer")(
            context="Paris is in France.", question="Where?"
        )
    assert input_fields_text(provider.calls[-1].messages) == "Paris is in France.\n\nWhere?"

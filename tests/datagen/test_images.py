"""Questions with images: content parts go only to vision models; with a describing model,
the others answer from its description, which the table's query carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from llmrouter_core.datagen import Task, generate
from llmrouter_core.datagen.metrics import exact_match
from llmrouter_core.datagen.runner import DESCRIBE_PROMPT
from llmrouter_core.datagen.tasks import qa_template
from llmrouter_core.testing import ScriptedProvider

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hH"
    "gAHggJ/PchI7wAAAABJRU5ErkJggg=="
)
CHARTS = Task("charts", qa_template, lambda a, ex, sb: exact_match(a, ex.gold), "exact_match")


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    path = tmp_path / "charts.jsonl"
    path.write_text(
        f'{{"id": "c1", "question": "How many pears?", "gold": "5", "images": ["{PNG}"],'
        ' "split": "train"}\n'
        '{"id": "c2", "question": "What is 2 + 3?", "gold": "5", "split": "train"}\n'
    )
    return path


def _text(messages: list[dict[str, Any]]) -> tuple[str, int]:
    content = messages[-1]["content"]
    if isinstance(content, str):
        return content, 0
    text = " ".join(p["text"] for p in content if p["type"] == "text")
    return text, sum(1 for p in content if p["type"] == "image_url")


def _provider() -> tuple[ScriptedProvider, Any]:
    def eye(messages: list[dict[str, Any]]) -> str:
        text, images = _text(messages)
        if DESCRIBE_PROMPT in text:
            assert images == 1
            return "A bar chart: apples 3, pears 5."
        return "5" if images or "2 + 3" in text else "no image"

    def blind(messages: list[dict[str, Any]]) -> str:
        text, images = _text(messages)
        assert images == 0
        return "5" if "pears 5" in text or "2 + 3" in text else "no idea"

    provider = ScriptedProvider({"eye": eye, "blind": blind})
    return provider, provider.pool().replace("eye", supports_vision=True)


def test_images_go_only_to_vision_models(tmp_path: Path, source: Path) -> None:
    provider, pool = _provider()
    result = generate([CHARTS], pool, tmp_path / "out", source=source, progress=False)
    df = pd.read_parquet(result.routing_file).set_index(["query_id", "model"])
    assert df.loc[("charts/c1", "eye"), "score"] == 1.0
    blind = df.loc[("charts/c1", "blind")]
    assert pd.isna(blind["score"]) and "no vision" in blind["error"]
    assert df.loc[("charts/c2", "blind"), "score"] == 1.0  # no image: every model answers
    assert [c.model for c in provider.calls].count("blind") == 1


def test_a_vision_model_describes_the_images_for_the_others(
    tmp_path: Path, source: Path
) -> None:
    provider, pool = _provider()
    out = tmp_path / "out"
    result = generate([CHARTS], pool, out, source=source, describe_with="eye", progress=False)
    assert result.errors == 0
    df = pd.read_parquet(result.routing_file)
    c1 = df[df.query_id == "charts/c1"]
    assert set(c1.score) == {1.0}
    # every row of the query carries the prompt with the description (text routers read it)
    assert c1["query"].nunique() == 1 and "Image: A bar chart" in c1["query"].iloc[0]
    describes = [c for c in provider.calls if DESCRIBE_PROMPT in _text(c.messages)[0]]
    assert len(describes) == 1
    # resuming does not describe again
    n = len(provider.calls)
    generate([CHARTS], pool, out, source=source, describe_with="eye", progress=False,
             resume=True)  # fmt: skip
    assert len(provider.calls) == n

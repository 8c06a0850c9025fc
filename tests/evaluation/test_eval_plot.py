"""plot_curves writes a readable PNG; matplotlib loads only when plotting."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError
from llmrouter_core.evaluation import RouterEvaluation, evaluate, plot_curves

WEIGHTS = [math.inf, *np.geomspace(1e6, 1.0, 20).tolist(), 0.0]


@pytest.fixture(scope="module")
def two_evaluations(
    rb_train: RoutingData, rb_test: RoutingData, fixed_router: Any
) -> list[RouterEvaluation]:
    n = rb_test.n_queries
    constant = fixed_router(
        rb_test.models,
        rb_test.queries,
        np.tile(np.nanmean(rb_train.scores, axis=0), (n, 1)),
        np.tile(np.nanmean(rb_train.costs, axis=0), (n, 1)),
        WEIGHTS,
        name="constant",
    )
    perfect = fixed_router(
        rb_test.models, rb_test.queries, rb_test.scores, rb_test.costs, WEIGHTS, name="perfect"
    )
    return [evaluate(constant, rb_test), evaluate(perfect, rb_test)]


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.mark.parametrize("log_cost", [False, True])
def test_plot_writes_a_png_with_content(
    tmp_path: Path, two_evaluations: list[RouterEvaluation], log_cost: bool
) -> None:
    import matplotlib.image

    out = plot_curves(
        two_evaluations, tmp_path / "sub" / "curves.png", title="RouterBench", log_cost=log_cost
    )
    assert out == tmp_path / "sub" / "curves.png"
    width, height = png_size(out)
    assert width >= 800 and height >= 500
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[:2] == (height, width)
    # Not blank: the lines and markers put many distinct colours on the canvas.
    rgb = (pixels[..., :3] * 255).astype(np.uint32)
    colours = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
    assert len(colours) > 50


def test_plot_accepts_one_evaluation_and_rejects_none(
    tmp_path: Path, two_evaluations: list[RouterEvaluation]
) -> None:
    out = plot_curves(two_evaluations[0], tmp_path / "one.png")
    assert png_size(out)[0] > 0
    with pytest.raises(DataError, match="nothing to plot"):
        plot_curves([], tmp_path / "none.png")


def test_importing_evaluation_does_not_load_matplotlib() -> None:
    code = (
        "import sys, llmrouter_core.evaluation as e; "
        "heavy = [m for m in ('matplotlib', 'pandas', 'litellm', 'torch') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

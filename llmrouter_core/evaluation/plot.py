"""Cost-quality plots of router evaluations (matplotlib, imported only when plotting).

Example:
    >>> from llmrouter_core.evaluation import evaluate, plot_curves  # doctest: +SKIP
    >>> plot_curves([evaluate(router, test)], "curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmrouter_core.errors import DataError
from llmrouter_core.evaluation.metrics import upper_hull
from llmrouter_core.evaluation.report import RouterEvaluation

__all__ = ["plot_curves"]

logger = logging.getLogger(__name__)


def _short(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def _polyline(
    xs: Sequence[float], ys: Sequence[float], log_cost: bool
) -> tuple[list[float], list[float]]:
    """The hull's vertices; on a log axis, densified so segments keep their true (linear) shape."""
    if not log_cost or len(xs) < 2:
        return list(xs), list(ys)
    import numpy as np

    out_x: list[float] = [xs[0]]
    out_y: list[float] = [ys[0]]
    for k in range(1, len(xs)):
        x1, y1, x2, y2 = xs[k - 1], ys[k - 1], xs[k], ys[k]
        if x1 > 0 and x2 > x1:
            grid = np.geomspace(x1, x2, 40)[1:]
            out_x.extend(grid.tolist())
            out_y.extend((y1 + (grid - x1) * (y2 - y1) / (x2 - x1)).tolist())
        else:
            out_x.append(x2)
            out_y.append(y2)
    return out_x, out_y


def _separate_labels(fig: Any, labels: list[Any], rounds: int = 30) -> None:
    """Nudge overlapping point labels apart vertically (a few greedy passes)."""
    renderer = fig.canvas.get_renderer()
    for _ in range(rounds):
        moved = False
        boxes = [t.get_window_extent(renderer) for t in labels]
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                if not boxes[i].overlaps(boxes[j]):
                    continue
                # Move the lower label down by the overlap (in points; 1 px = 72/dpi pt).
                lo, hi = (i, j) if boxes[i].y0 <= boxes[j].y0 else (j, i)
                overlap_px = boxes[lo].y1 - boxes[hi].y0 + 1.0
                dx, dy = labels[lo].xyann
                labels[lo].xyann = (dx, dy - overlap_px * 72.0 / fig.dpi)
                boxes[lo] = labels[lo].get_window_extent(renderer)
                moved = True
        if not moved:
            return


def plot_curves(
    evaluations: RouterEvaluation | Sequence[RouterEvaluation],
    path: str | Path,
    *,
    title: str | None = None,
    log_cost: bool = False,
    annotate_models: bool = True,
) -> Path:
    """Write a PNG of every router's cost-quality curve.

    Each router's upper hull is a line (flat to the most expensive single model's cost, as AIQ
    counts it) with its raw operating points as markers; the single models are labelled grey
    points joined by their own hull (dashed), and the per-query oracle is a star. The single
    models and oracle are taken from the first evaluation (all should share one dataset).

    Args:
        evaluations: One or more results of :func:`~llmrouter_core.evaluation.evaluate`.
        path: Output ``.png`` file (parent folders are created).
        title: Plot title (default: the dataset name).
        log_cost: Log-scale cost axis (readable when prices span orders of magnitude; the
            default linear axis is the one AIQ integrates over).
        annotate_models: Label the single-model points with their names.

    Returns:
        The written path.
    """
    # Imported here: matplotlib is slow to import and only plotting needs it. The Agg canvas
    # renders off-screen without touching pyplot's global state or any GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    evals = [evaluations] if isinstance(evaluations, RouterEvaluation) else list(evaluations)
    if not evals:
        raise DataError("nothing to plot: no evaluations given")
    ref = evals[0]
    if any(e.dataset != ref.dataset or e.models != ref.models for e in evals[1:]):
        logger.warning("plotting evaluations of different datasets or pools on one chart")

    fig = Figure(figsize=(11.0, 6.0), dpi=120)
    FigureCanvasAgg(fig)
    ax: Any = fig.add_subplot(1, 1, 1)

    singles = ref.single_models
    s_hull = upper_hull(list(singles.values()))
    ax.plot(
        *_polyline([*s_hull[:, 0], ref.c_max], [*s_hull[:, 1], s_hull[-1, 1]], log_cost),
        linestyle="--",
        color="0.55",
        linewidth=1.2,
        label=f"single models' hull (AIQ {ref.single_hull_aiq:.3f})",
        zorder=2,
    )
    ax.scatter(
        [p.cost for p in singles.values()],
        [p.score for p in singles.values()],
        color="0.35",
        s=28,
        zorder=3,
    )
    labels: list[Any] = []
    if annotate_models:
        for model, p in singles.items():
            labels.append(
                ax.annotate(
                    _short(model),
                    (p.cost, p.score),
                    textcoords="offset points",
                    xytext=(4, -9),
                    fontsize=7,
                    color="0.25",
                )
            )
    ax.scatter(
        [ref.oracle.cost],
        [ref.oracle.score],
        marker="*",
        s=220,
        color="gold",
        edgecolors="black",
        linewidths=0.6,
        label=f"oracle ({ref.oracle.score:.3f}; frontier AIQ {ref.oracle_aiq:.3f})",
        zorder=5,
    )

    palette = [f"C{i}" for i in range(10)]
    for i, ev in enumerate(evals):
        color = palette[i % len(palette)]
        hull = upper_hull(ev.curve)
        xs = [*hull[:, 0]]
        ys = [*hull[:, 1]]
        if ev.c_max > xs[-1]:
            xs.append(ev.c_max)
            ys.append(ys[-1])
        ax.plot(
            *_polyline(xs, ys, log_cost),
            color=color,
            linewidth=2.0,
            label=f"{ev.router} (AIQ {ev.aiq:.3f})",
            zorder=4,
        )
        ax.scatter(
            [p.mean_cost for p in ev.curve],
            [p.mean_score for p in ev.curve],
            color=color,
            s=14,
            alpha=0.6,
            marker="o",
            zorder=4,
        )

    if log_cost:
        ax.set_xscale("log")
    ax.set_xlabel("mean cost per query (USD)" + (", log scale" if log_cost else ""))
    ax.set_ylabel("mean score")
    ax.set_title(title if title is not None else (ref.dataset or "cost-quality curves"))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    if labels:
        _separate_labels(fig, labels)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    logger.info("wrote %s", out)
    return out

"""Training curves from a run's ``metrics.csv`` (the file ``oidkit.core.runs.MetricsLog`` writes).

Rows carry ``step``, ``split`` (train / eval), ``loss``, ``lr``, ``tokens_per_s``, ``grad_norm``; the page
shows loss (train and eval, with eval perplexity), learning rate, gradient norm and throughput.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from oidkit.atomic import atomic_path, write_atomic
from oidkit.errors import InputError
from oidkit.io.outputs import refuse_overwriting_inputs
from oidkit.viz.page import html_page, matplotlib_pyplot, png_data_uri

PANELS = (("loss", "loss (nats / token)"), ("lr", "learning rate"), ("grad_norm", "gradient norm"),
          ("tokens_per_s", "tokens / s"))


def series(rows: list[dict], split: str, key: str) -> list[tuple[float, float]]:
    """``(step, value)`` of ``key`` for rows of ``split`` that have it."""
    return [(r["step"], r[key]) for r in rows if r.get("split") == split and isinstance(r.get(key), float)]


def write_curves(metrics_csv: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write ``curves.png`` and ``curves.html`` (the figure embedded, plus a summary table) to ``out_dir``."""
    from oidkit.core.runs import read_metrics

    metrics_csv = Path(metrics_csv)
    if not metrics_csv.exists():
        raise InputError("metrics file not found", file=str(metrics_csv), hint="pass RUN_DIR/metrics.csv of a run")
    rows = read_metrics(metrics_csv)
    if not rows or "step" not in rows[0] or "loss" not in rows[0]:
        raise InputError("expected a CSV with columns step, split, loss, lr, ...", file=str(metrics_csv),
                         hint="use the metrics.csv that oid train / oid pretrain write")
    plt = matplotlib_pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (key, label) in zip(axes.flat, PANELS, strict=True):
        for split, style in (("train", "-"), ("eval", "o-")):
            points = series(rows, split, key)
            if points:
                ax.plot(*zip(*points, strict=True), style, label=split, markersize=4)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    out_dir = Path(out_dir)
    refuse_overwriting_inputs([out_dir / "curves.png", out_dir / "curves.html"], [metrics_csv])
    with atomic_path(out_dir / "curves.png") as temp:
        fig.savefig(temp, dpi=110, format="png")
    image = png_data_uri(fig)
    plt.close(fig)
    train, evals = series(rows, "train", "loss"), series(rows, "eval", "loss")
    summary = {"steps": int(max(r["step"] for r in rows)),
               "first_train_loss": train[0][1] if train else None, "last_train_loss": train[-1][1] if train else None,
               "best_eval_loss": min(v for _, v in evals) if evals else None}
    if summary["best_eval_loss"] is not None:
        summary["best_eval_perplexity"] = math.exp(summary["best_eval_loss"])
    table = "".join(f"<tr><th>{k}</th><td>{v if not isinstance(v, float) else f'{v:.4g}'}</td></tr>"
                    for k, v in summary.items())
    body = (f"<p class='note'>{html.escape(str(metrics_csv))}</p><table>{table}</table>"
            f"<p><img src='{image}' alt='training curves' style='max-width: 100%'></p>")
    write_atomic(out_dir / "curves.html", html_page("Training curves", body))
    return {"html": str(out_dir / "curves.html"), "png": str(out_dir / "curves.png"), **summary}

"""The report's figures as PNG bytes (matplotlib, Agg canvas, no pyplot global state).

Every figure is drawn from the ``stats`` dict only, so the PNGs show exactly the numbers in stats.json.
"""

from __future__ import annotations

import io
import math
from itertools import pairwise

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

USER_COLOR, ASSISTANT_COLOR = "#4c72b0", "#dd8452"
MAX_TURN_BARS = 30
DPI = 110


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)  # draw with Agg whatever backend the process has selected
    # no "Software" text chunk: it carries a URL and a version, making PNGs differ between installs
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def turns_figure(turns: dict) -> Figure:
    """Records per turn count; counts past :data:`MAX_TURN_BARS` share the last bar."""
    counts = {int(k): v for k, v in turns["counts"].items()}
    labels, heights = [], []
    for n in range(min(counts, default=0), min(max(counts, default=0), MAX_TURN_BARS) + 1):
        labels.append(str(n))
        heights.append(counts.get(n, 0))
    overflow = sum(v for k, v in counts.items() if k > MAX_TURN_BARS)
    if overflow:
        labels.append(f">{MAX_TURN_BARS}")
        heights.append(overflow)
    figure = Figure(figsize=(8, 3.2))
    ax = figure.add_subplot()
    ax.bar(range(len(heights)), heights, color=USER_COLOR)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    summary = turns["summary"]
    ax.set_title(f"Turns per record (median {summary['p50']:g}, p90 {summary['p90']:g}, max {summary['max']})")
    ax.set_xlabel("turns (user + assistant + tool messages)")
    ax.set_ylabel("records")
    ax.spines[["top", "right"]].set_visible(False)
    return figure


def bin_label(low: int, high: int) -> str:
    return str(low) if high - low == 1 else f"{low}-{high - 1}"


def tokens_figure(tokens: dict, tokenizer: str) -> Figure:
    """Share of user and assistant messages per power-of-two length bin, side by side."""
    histogram = tokens["histogram"]
    edges = histogram["edges"]
    labels = [bin_label(a, b) for a, b in pairwise(edges)]
    figure = Figure(figsize=(8, 3.4))
    ax = figure.add_subplot()
    width = 0.4
    for offset, role, color in ((-width / 2, "user", USER_COLOR), (width / 2, "assistant", ASSISTANT_COLOR)):
        total = sum(histogram[role]) or 1
        shares = [100 * c / total for c in histogram[role]]
        summary = tokens[role]
        ax.bar([i + offset for i in range(len(labels))], shares, width=width, color=color,
               label=f"{role}: median {summary['p50']:g}, p90 {summary['p90']:g}, p99 {summary['p99']:g}")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_title(f"Message length in tokens ({tokenizer})")
    ax.set_xlabel("tokens per message")
    ax.set_ylabel("% of messages")
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return figure


def languages_figure(languages: list[dict], top: int = 12) -> Figure:
    rows = languages[:top][::-1]
    figure = Figure(figsize=(6, 0.35 * len(rows) + 1))
    ax = figure.add_subplot()
    ax.barh([r["lang"] for r in rows], [r["records"] for r in rows], color=USER_COLOR)
    for i, r in enumerate(rows):
        ax.text(r["records"], i, f" {100 * r['share']:.1f}%", va="center", fontsize=8)
    ax.set_xscale("log")  # one language often dominates: a linear axis hides all the others
    ax.set_title(f"Records per language (top {len(rows)})")
    ax.set_xlabel("records (log scale)")
    ax.spines[["top", "right"]].set_visible(False)
    return figure


def verbs_figure(top_verbs: list[dict]) -> Figure:
    """Self-Instruct's figure: inner ring the leading verbs, outer ring each verb's commonest objects."""
    figure = Figure(figsize=(7.5, 7.5))
    ax = figure.add_subplot()
    palette = colormaps["tab20"]
    inner_sizes = [v["count"] for v in top_verbs]
    inner_colors = [palette(i % 20) for i in range(len(top_verbs))]
    outer_sizes, outer_colors, outer_labels = [], [], []
    for verb, color in zip(top_verbs, inner_colors, strict=True):
        for obj in verb["objects"]:
            outer_sizes.append(obj["count"])
            outer_colors.append((*color[:3], 0.55))
            outer_labels.append(obj["object"])
        rest = verb["count"] - sum(o["count"] for o in verb["objects"])
        if rest:
            outer_sizes.append(rest)
            outer_colors.append((1, 1, 1, 0))
            outer_labels.append("")
    ring = {"width": 0.3, "edgecolor": "white", "linewidth": 0.6}
    inner, _ = ax.pie(inner_sizes, radius=0.7, colors=inner_colors, startangle=90, counterclock=False,
                      wedgeprops=ring)
    outer, _ = ax.pie(outer_sizes, radius=1.0, colors=outer_colors, startangle=90, counterclock=False,
                      wedgeprops=ring)
    label_wedges(ax, inner, [v["verb"] for v in top_verbs], radius=0.55, size=8, min_degrees=7, bold=True)
    label_wedges(ax, outer, outer_labels, radius=0.85, size=6.5, min_degrees=5)
    ax.set_title("Leading verbs of English instructions (inner) and their objects (outer)")
    ax.set_aspect("equal")
    return figure


def label_wedges(ax, wedges, labels: list[str], *, radius: float, size: float, min_degrees: float,
                 bold: bool = False) -> None:
    """Write each label along its wedge's middle radius; wedges too narrow for text stay unlabelled."""
    for wedge, label in zip(wedges, labels, strict=True):
        span = (wedge.theta2 - wedge.theta1) % 360
        if not label or span < min_degrees:
            continue
        angle = (wedge.theta1 + wedge.theta2) / 2
        x, y = radius * math.cos(math.radians(angle)), radius * math.sin(math.radians(angle))
        rotation = angle if -90 <= (angle + 180) % 360 - 180 <= 90 else angle + 180
        ax.text(x, y, label, rotation=rotation, rotation_mode="anchor", ha="center", va="center",
                fontsize=size, fontweight="bold" if bold else "normal")


def funnel_figure(funnel: dict) -> Figure:
    """Records left after each curation operator, with what it dropped."""
    steps = funnel["steps"]
    names = ["input", *[s["name"] for s in steps]]
    left = [funnel["input"], *[s["out"] for s in steps]]
    figure = Figure(figsize=(8, 0.4 * len(names) + 1.2))
    ax = figure.add_subplot()
    positions = list(range(len(names)))[::-1]
    ax.barh(positions, left, color=USER_COLOR)
    for position, step in zip(positions[1:], steps, strict=True):
        note = f"  -{step['dropped']:,}" + (f", {step['modified']:,} modified" if step.get("modified") else "")
        ax.text(step["out"], position, note, va="center", fontsize=8, color="#b03030")
    ax.set_yticks(positions, names, fontsize=8)
    ax.set_xlabel("records left")
    ax.set_title("Curation funnel")
    ax.spines[["top", "right"]].set_visible(False)
    return figure


def all_figures(stats: dict) -> dict[str, bytes]:
    """PNG bytes of every figure the stats can support, by file stem."""
    figures = {"turns": turns_figure(stats["turns"]),
               "tokens": tokens_figure(stats["tokens"], stats["tokenizer"]),
               "languages": languages_figure(stats["languages"])}
    if stats["instructions"]["en"]["top_verbs"]:
        figures["verbs"] = verbs_figure(stats["instructions"]["en"]["top_verbs"])
    if stats.get("funnel"):
        figures["funnel"] = funnel_figure(stats["funnel"])
    return {name: png(figure) for name, figure in figures.items()}

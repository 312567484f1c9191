"""Attention maps: for each layer and head, how much each token (row) attends to each earlier token (column).

The probabilities come from our own model (``oidkit.models.llama``), which computes the softmax explicitly
when asked, so what is drawn is exactly ``softmax(Q K^T / sqrt(d) + causal mask)``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import torch

from oidkit.atomic import atomic_path, write_atomic
from oidkit.viz.page import html_page, matplotlib_pyplot

SCRIPT = """
const data = JSON.parse(document.getElementById('data').textContent);
const n = data.tokens.length, cell = Math.max(6, Math.min(24, Math.floor(640 / n))), margin = 130;
const canvas = document.getElementById('map'), ctx = canvas.getContext('2d');
canvas.width = canvas.height = margin + n * cell;
const layer = document.getElementById('layer'), head = document.getElementById('head');
data.maps.forEach((_, i) => layer.add(new Option('layer ' + i, i)));
data.maps[0].forEach((_, i) => head.add(new Option('head ' + i, i)));
function label(t) { return JSON.stringify(t).slice(1, -1).slice(0, 16); }
function draw() {
  const map = data.maps[layer.value][head.value];
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = Math.min(12, cell) + 'px monospace';
  for (let q = 0; q < n; q++) {
    for (let k = 0; k <= q; k++) {
      const v = 255 - map[q * n + k];
      ctx.fillStyle = `rgb(${v},${v},255)`;
      ctx.fillRect(margin + k * cell, margin + q * cell, cell, cell);
    }
    ctx.fillStyle = '#222'; ctx.textAlign = 'right';
    ctx.fillText(label(data.tokens[q]), margin - 4, margin + q * cell + cell * 0.8);
    ctx.save(); ctx.translate(margin + q * cell + cell * 0.8, margin - 4); ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'left'; ctx.fillText(label(data.tokens[q]), 0, 0); ctx.restore();
  }
}
canvas.onmousemove = (e) => {
  const r = canvas.getBoundingClientRect();
  const k = Math.floor((e.clientX - r.left - margin) / cell), q = Math.floor((e.clientY - r.top - margin) / cell);
  if (q < 0 || k < 0 || q >= n || k > q) return;
  const p = data.maps[layer.value][head.value][q * n + k] / 255;
  document.getElementById('info').textContent =
    `query ${q} ${JSON.stringify(data.tokens[q])} -> key ${k} ${JSON.stringify(data.tokens[k])}: p ~ ${p.toFixed(2)}`;
};
layer.onchange = head.onchange = draw;
draw();
"""


@torch.no_grad()
def attention_maps(model: Any, tokenizer: Any, text: str, *, max_tokens: int = 64) -> tuple[list[str], torch.Tensor]:
    """Token strings and the probabilities, shaped (layers, heads, T, T), of ``text``'s first tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    attentions: list[torch.Tensor] = []
    model(torch.tensor([ids]), attentions=attentions)
    tokens = [tokenizer.decode([i]) for i in ids]
    return tokens, torch.stack([a[0].float() for a in attentions])


def plot_layer(tokens: list[str], layer_maps: torch.Tensor, layer: int, out_png: Path) -> Path:
    """One PNG per layer: a grid of its heads' maps (rows: query token, columns: key token)."""
    plt = matplotlib_pyplot()
    heads = layer_maps.shape[0]
    cols = min(heads, 4)
    rows = -(-heads // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    labelled = len(tokens) <= 24  # beyond that, tick labels overlap into a grey smear
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        ax.imshow(layer_maps[h].numpy(), cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"layer {layer} head {h}", fontsize=9)
        if labelled:
            ax.set_xticks(range(len(tokens)), [repr(t)[1:-1] for t in tokens], rotation=90, fontsize=6)
            ax.set_yticks(range(len(tokens)), [repr(t)[1:-1] for t in tokens], fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(out_png) as temp:
        fig.savefig(temp, dpi=100, format="png")
    plt.close(fig)
    return out_png


def write_attention(model_name: str, text: str, out_dir: str | Path, *, max_tokens: int = 64) -> dict[str, Any]:
    """Write ``attention.html`` (pick layer and head) and ``attention_layer_NN.png`` to ``out_dir``."""
    from oidkit.models.llama import load_llama

    model, tokenizer = load_llama(model_name)
    tokens, maps = attention_maps(model, tokenizer, text, max_tokens=max_tokens)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = [plot_layer(tokens, maps[i], i, out_dir / f"attention_layer_{i:02d}.png") for i in range(maps.shape[0])]
    # probabilities quantised to 0..255 for the page: plenty for a colour, a quarter of the size of decimals
    quantised = (maps * 255).round().to(torch.uint8).flatten(2).tolist()
    data = json.dumps({"tokens": tokens, "maps": quantised}, ensure_ascii=False).replace("</", "<\\/")
    body = (f"<p class='note'>model <code>{html.escape(model_name)}</code>, {len(tokens)} tokens; "
            "row = query token, column = key token it attends to; darker = more attention. "
            "Hover a cell for its probability.</p>"
            "<p><select id='layer'></select> <select id='head'></select> <span id='info'></span></p>"
            f"<canvas id='map'></canvas><script type='application/json' id='data'>{data}</script>")
    page = out_dir / "attention.html"
    write_atomic(page, html_page("Attention maps", body, SCRIPT))
    return {"html": str(page), "pngs": [str(p) for p in pngs], "tokens": len(tokens),
            "layers": maps.shape[0], "heads": maps.shape[1]}

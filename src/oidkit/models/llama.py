"""A Llama-architecture Transformer in one file, written to be read next to the papers.

The whole model, top to bottom (x is a (batch, time, dim) tensor of hidden states)::

    x = Embed(tokens)                                      token embedding, no position added here
    for each layer:
        x = x + Attention(RMSNorm(x))                      pre-norm residual block 1
        x = x + FeedForward(RMSNorm(x))                    pre-norm residual block 2
    logits = Output(RMSNorm(x))                            tied to Embed or a separate matrix

- RMSNorm (Zhang & Sennrich 2019): ``y = x / sqrt(mean(x^2) + eps) * g``; no mean subtraction, no bias.
- Rotary position embedding, RoPE (Su et al. 2021): each pair of query/key channels is rotated by an angle
  ``position * theta^(-2i/d)``, so the score ``q_m . k_n`` depends only on the distance ``m - n``.
- Causal multi-head attention (Vaswani et al. 2017): ``softmax(Q K^T / sqrt(d_head) + mask) V`` per head;
  grouped-query attention, GQA (Ainslie et al. 2023): several query heads share one key/value head,
  which shrinks the KV cache by ``n_heads / n_kv_heads``.
- SwiGLU feed-forward (Shazeer 2020): ``W2( silu(W1 x) * W3 x )``.

Weights load from a Hugging Face Llama folder (``LlamaModel.from_pretrained``) and give the same logits
as ``transformers`` (tests/models/test_llama.py pins that to 1e-4); ``save_pretrained`` writes a folder that
``transformers`` loads back, so everything else in oidkit (evaluate, serve, export) works on our models.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oidkit.errors import ConfigError
from oidkit.models.loss import target_cross_entropy


@dataclass
class LlamaConfig:
    """Every number that shapes the model (nanoGPT style); ``from_hf`` reads a HF ``config.json``."""

    vocab_size: int = 512
    dim: int = 64  # hidden size: width of the residual stream
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2  # n_heads / n_kv_heads query heads share one key/value head (GQA)
    head_dim: int | None = None  # None: dim // n_heads
    intermediate_size: int = 172  # width of the SwiGLU hidden layer
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None  # {"rope_type": "linear" | "llama3", "factor": ..., ...}
    max_seq_len: int = 512
    tie_embeddings: bool = True
    attention_bias: bool = False
    mlp_bias: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # HF config fields we do not use, kept for saving

    def __post_init__(self) -> None:
        if self.head_dim is None:
            self.head_dim = self.dim // self.n_heads
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")

    @classmethod
    def from_hf(cls, hf: dict | Any) -> LlamaConfig:
        """From a HF ``LlamaConfig`` object or the dict of a ``config.json``."""
        hf = hf if isinstance(hf, dict) else hf.to_dict()
        if hf.get("model_type", "llama") != "llama":
            raise ConfigError(f"model_type {hf.get('model_type')!r} is not a Llama architecture; "
                              "our readable model loads only model_type 'llama' (SmolLM2, Llama 2/3, TinyLlama)")
        if hf.get("hidden_act", "silu") != "silu":
            raise ConfigError(f"hidden_act {hf['hidden_act']!r}: the SwiGLU block here uses silu")
        # transformers 5 folds rope_theta and rope_scaling into rope_parameters; older config.json files do not
        rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
        theta = rope.pop("rope_theta", hf.get("rope_theta", 10000.0))
        if rope.get("rope_type", rope.get("type", "default")) == "default":
            rope = {}
        n_heads = hf["num_attention_heads"]
        used = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "intermediate_size", "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters",
                "max_position_embeddings", "tie_word_embeddings", "attention_bias", "mlp_bias", "bos_token_id",
                "eos_token_id", "pad_token_id", "model_type", "hidden_act", "architectures"}
        return cls(vocab_size=hf["vocab_size"], dim=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
                   n_heads=n_heads, n_kv_heads=hf.get("num_key_value_heads") or n_heads,
                   head_dim=hf.get("head_dim") or hf["hidden_size"] // n_heads,
                   intermediate_size=hf["intermediate_size"], rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
                   rope_theta=float(theta), rope_scaling=rope or None,
                   max_seq_len=hf.get("max_position_embeddings", 2048),
                   tie_embeddings=hf.get("tie_word_embeddings", False),
                   attention_bias=hf.get("attention_bias", False), mlp_bias=hf.get("mlp_bias", False),
                   bos_token_id=hf.get("bos_token_id"), eos_token_id=hf.get("eos_token_id"),
                   pad_token_id=hf.get("pad_token_id"), extra={k: v for k, v in hf.items() if k not in used})

    def to_hf(self) -> dict[str, Any]:
        """The ``config.json`` dict ``transformers.LlamaConfig`` reads."""
        rope = {"rope_type": "default", **(self.rope_scaling or {}), "rope_theta": self.rope_theta}
        return {**self.extra, "architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "vocab_size": self.vocab_size, "hidden_size": self.dim, "num_hidden_layers": self.n_layers,
                "num_attention_heads": self.n_heads, "num_key_value_heads": self.n_kv_heads,
                "head_dim": self.head_dim, "intermediate_size": self.intermediate_size, "hidden_act": "silu",
                "rms_norm_eps": self.rms_norm_eps, "rope_theta": self.rope_theta, "rope_parameters": rope,
                "max_position_embeddings": self.max_seq_len, "tie_word_embeddings": self.tie_embeddings,
                "attention_bias": self.attention_bias, "mlp_bias": self.mlp_bias,
                "bos_token_id": self.bos_token_id, "eos_token_id": self.eos_token_id,
                "pad_token_id": self.pad_token_id}


class RMSNorm(nn.Module):
    """``y = x / sqrt(mean(x^2) + eps) * g``, computed in float32 like the reference implementation."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def rope_inverse_frequencies(config: LlamaConfig) -> torch.Tensor:
    """``theta^(-2i/d)`` for i in 0..d/2, optionally rescaled for a longer context (linear or Llama 3)."""
    d = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    scaling = config.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":  # position interpolation: positions divided by the factor
        return inv_freq / scaling["factor"]
    if kind == "llama3":  # long wavelengths divided by the factor, short ones kept, a smooth ramp between
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_len = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
        return torch.where(medium, smoothed, scaled)
    if kind != "default":
        raise ConfigError(f"rope scaling type {kind!r} is not implemented here (default, linear, llama3 are)")
    return inv_freq


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last axis: a 90-degree turn of each channel pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (i, i + d/2) channel pair by its angle: ``x cos + rotate_half(x) sin``."""
    return x * cos + rotate_half(x) * sin


class KVCache:
    """Keys and values of the tokens seen so far, per layer, so decoding a token costs one position, not all."""

    def __init__(self, config: LlamaConfig, batch_size: int, max_len: int, *, dtype: torch.dtype,
                 device: torch.device | str = "cpu"):
        shape = (config.n_layers, batch_size, config.n_kv_heads, max_len, config.head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0  # positions filled; advanced by the model once every layer has stored its keys

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's keys/values of ``layer``; return all keys/values up to and including them."""
        end = self.length + k.shape[2]
        if end > self.keys.shape[3]:
            raise ConfigError(f"KV cache holds {self.keys.shape[3]} positions, {end} needed; raise max_len")
        self.keys[layer, :, :, self.length:end] = k
        self.values[layer, :, :, self.length:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]


class Attention(nn.Module):
    """Causal multi-head self-attention with grouped-query key/value heads and rotary positions."""

    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.layer, self.head_dim = layer, config.head_dim
        self.n_heads, self.n_kv_heads = config.n_heads, config.n_kv_heads
        bias = config.attention_bias
        self.wq = nn.Linear(config.dim, config.n_heads * config.head_dim, bias=bias)
        self.wk = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=bias)
        self.wv = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=bias)
        self.wo = nn.Linear(config.n_heads * config.head_dim, config.dim, bias=bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None = None, attentions: list | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        # (B, T, heads * d) -> (B, heads, T, d): each head attends on its own slice of channels
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # positions enter here, and only here
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        # GQA: query head h reads key/value head h // (n_heads / n_kv_heads)
        group = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        if attentions is not None:  # explicit softmax so a reader can look at the probabilities
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.float().softmax(dim=-1).to(q.dtype)
            attentions.append(probs.detach())
            out = probs @ v
        else:  # the same equation, fused: softmax(Q K^T / sqrt(d) + mask) V
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1)
        return self.wo(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class FeedForward(nn.Module):
    """SwiGLU: ``W2( silu(W1 x) * W3 x )``; W1 is the gate, W3 the value, W2 projects back to ``dim``."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.intermediate_size, bias=config.mlp_bias)
        self.w3 = nn.Linear(config.dim, config.intermediate_size, bias=config.mlp_bias)
        self.w2 = nn.Linear(config.intermediate_size, config.dim, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """One layer: ``x + Attention(RMSNorm(x))`` then ``x + FeedForward(RMSNorm(x))``."""

    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.rms_norm_eps)
        self.attention = Attention(config, layer)
        self.ffn_norm = RMSNorm(config.dim, config.rms_norm_eps)
        self.feed_forward = FeedForward(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache: KVCache | None, attentions: list | None) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, mask, cache, attentions)
        return x + self.feed_forward(self.ffn_norm(x))


def attention_mask(segment_ids: torch.Tensor | None, query_len: int, key_len: int,
                   device: torch.device) -> torch.Tensor:
    """Boolean (B or 1, 1, query_len, key_len) mask, True = may attend.

    Causal: query i (at absolute index ``key_len - query_len + i``) sees keys up to itself. With
    ``segment_ids`` (packed records, one id per token), it also sees only keys of its own record:
    a block-diagonal causal mask, so each record is computed as if it were alone.
    """
    offset = key_len - query_len
    q_index = torch.arange(query_len, device=device)[:, None] + offset
    causal = torch.arange(key_len, device=device)[None, :] <= q_index
    if segment_ids is None:
        return causal[None, None]
    same_record = segment_ids[:, -query_len:, None] == segment_ids[:, None, :key_len]
    return (causal[None] & same_record)[:, None]


class LlamaModel(nn.Module):
    """Embedding, ``n_layers`` blocks, final RMSNorm and the output head."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.rms_norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:  # one matrix reads tokens in and scores them out (saves vocab * dim weights)
            self.output.weight = self.tok_embeddings.weight
        self.register_buffer("inv_freq", rope_inverse_frequencies(config), persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Normal(0, 0.02) for every matrix, zero biases: the initialisation GPT-2 and Llama use."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def rope_cos_sin(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cos and sin of ``position * inv_freq``, shaped (B, 1, T, head_dim) to broadcast over heads."""
        angles = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        angles = torch.cat((angles, angles), dim=-1)  # channel i and i + d/2 share an angle (rotate_half pairs)
        return angles.cos()[:, None], angles.sin()[:, None]

    def forward(self, tokens: torch.Tensor, *, position_ids: torch.Tensor | None = None,
                segment_ids: torch.Tensor | None = None, cache: KVCache | None = None,
                attentions: list | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T); with ``labels``, the summed loss instead.

        ``position_ids``: per-token positions (default ``0..T-1`` after what ``cache`` holds); packed
        records pass positions restarting at 0 per record together with ``segment_ids``. ``attentions``:
        a list that receives each layer's (B, heads, T, T_keys) attention probabilities. ``labels`` (B, T):
        the next token at each position, ``IGNORE_INDEX`` where none counts; the output head then runs only
        on the positions that count (``models.loss.target_cross_entropy``), as nanoGPT's
        ``forward(idx, targets)`` computes its loss next to the model.
        """
        B, T = tokens.shape
        past = cache.length if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=tokens.device)[None].expand(B, T)
        # None lets SDPA use its causal fast path; an explicit mask is needed for records, chunks or inspection
        mask = None
        if segment_ids is not None or (past and T > 1) or attentions is not None:
            mask = attention_mask(segment_ids, T, past + T, tokens.device)
        cos, sin = self.rope_cos_sin(position_ids)
        x = self.tok_embeddings(tokens)
        for block in self.layers:
            x = block(x, cos.to(x.dtype), sin.to(x.dtype), mask, cache, attentions)
        if cache is not None:
            cache.length += T
        if labels is not None:
            return target_cross_entropy(self.norm(x), self.output, labels)
        return self.output(self.norm(x))

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, max_new_tokens: int, *, temperature: float = 0.0,
                 top_k: int | None = None, eos_token_id: int | list[int] | None = None) -> torch.Tensor:
        """Prompt (B, T) -> prompt + up to ``max_new_tokens`` tokens; greedy when ``temperature`` is 0.

        The prompt is run once to fill the KV cache, then each step feeds only the newest token. Rows that
        produced an end token are padded with ``pad_token_id`` (or the end token) until all rows end.
        """
        eos = eos_token_id if eos_token_id is not None else self.config.eos_token_id
        eos_ids = torch.tensor([eos] if isinstance(eos, int) else (eos or []), device=tokens.device)
        pad = self.config.pad_token_id if self.config.pad_token_id is not None else (eos_ids[0] if len(eos_ids) else 0)
        param = next(self.parameters())
        cache = KVCache(self.config, tokens.shape[0], tokens.shape[1] + max_new_tokens, dtype=param.dtype,
                        device=param.device)
        finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
        logits = self(tokens, cache=cache)[:, -1]
        out = tokens
        for _ in range(max_new_tokens):
            if temperature > 0:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_token = torch.multinomial(logits.softmax(-1), 1)[:, 0]
            else:
                next_token = logits.argmax(-1)
            next_token = torch.where(finished, torch.as_tensor(pad, device=tokens.device), next_token)
            out = torch.cat((out, next_token[:, None]), dim=1)
            finished |= torch.isin(next_token, eos_ids)
            if finished.all():
                break
            logits = self(next_token[:, None], cache=cache)[:, -1]
        return out

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, dtype: torch.dtype = torch.float32) -> LlamaModel:
        """Load a Hugging Face Llama folder (``config.json`` + ``*.safetensors``)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise ConfigError(f"{folder}: no config.json; expected a Hugging Face model folder "
                              "(oid models pull ALIAS, or save_pretrained of a transformers model)")
        config = LlamaConfig.from_hf(json.loads((folder / "config.json").read_text()))
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ConfigError(f"{folder}: no *.safetensors weights found; re-save the model with safe_serialization")
        hf_state = {name: t for f in files for name, t in load_file(f).items()}
        with torch.device("meta"):  # no random init for weights about to be replaced: faster, and RNG untouched
            model = cls(config)
        model.load_state_dict(from_hf_state_dict(hf_state, config), assign=True)
        if config.tie_embeddings:  # assign=True made two parameters of the one tied matrix
            model.output.weight = model.tok_embeddings.weight
        model.inv_freq = rope_inverse_frequencies(config)  # a computed buffer: not in the weights, still on meta
        return model.to(dtype).eval()

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` with Hugging Face names (``transformers`` loads it)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(to_hf_state_dict(self.state_dict(), self.config), folder / "model.safetensors",
                  metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(self.config.to_hf(), indent=2))
        return folder


# Our module names -> Hugging Face LlamaForCausalLM names ("{n}" is the layer number); read backwards to load.
HF_NAMES = {
    "tok_embeddings": "model.embed_tokens",
    "norm": "model.norm",
    "output": "lm_head",
    "layers.{n}.attention_norm": "model.layers.{n}.input_layernorm",
    "layers.{n}.ffn_norm": "model.layers.{n}.post_attention_layernorm",
    "layers.{n}.attention.wq": "model.layers.{n}.self_attn.q_proj",
    "layers.{n}.attention.wk": "model.layers.{n}.self_attn.k_proj",
    "layers.{n}.attention.wv": "model.layers.{n}.self_attn.v_proj",
    "layers.{n}.attention.wo": "model.layers.{n}.self_attn.o_proj",
    "layers.{n}.feed_forward.w1": "model.layers.{n}.mlp.gate_proj",
    "layers.{n}.feed_forward.w3": "model.layers.{n}.mlp.up_proj",
    "layers.{n}.feed_forward.w2": "model.layers.{n}.mlp.down_proj",
}
OUR_NAMES = {hf: ours for ours, hf in HF_NAMES.items()}


def _rename(name: str, table: dict[str, str]) -> str:
    """``layers.3.attention.wq.weight`` -> ``model.layers.3.self_attn.q_proj.weight`` (or back)."""
    module, param = name.rsplit(".", 1)
    layer = re.search(r"layers\.(\d+)", module)
    template = re.sub(r"layers\.\d+", "layers.{n}", module, count=1)
    if template not in table:
        raise ConfigError(f"unexpected tensor {name!r}: not part of a Llama model")
    return table[template].format(n=layer.group(1) if layer else "") + "." + param


def from_hf_state_dict(hf_state: dict[str, torch.Tensor], config: LlamaConfig) -> dict[str, torch.Tensor]:
    """Rename a HF state dict to ours; a tied model's output head is the embedding."""
    state = {_rename(name, OUR_NAMES): t for name, t in hf_state.items() if not name.endswith("rotary_emb.inv_freq")}
    if config.tie_embeddings:
        state["output.weight"] = state["tok_embeddings.weight"]
    return state


def to_hf_state_dict(state: dict[str, torch.Tensor], config: LlamaConfig) -> dict[str, torch.Tensor]:
    """Rename our state dict to HF names (contiguous copies; a tied head is stored once, as the embedding)."""
    return {_rename(name, HF_NAMES): t.contiguous() for name, t in state.items()
            if not (config.tie_embeddings and name == "output.weight")}


# A layer's linear maps by leaf name, transformers' -> ours: LoRA targets may be given either way.
OUR_LINEAR_NAMES = {hf.rsplit(".", 1)[1]: ours.rsplit(".", 1)[1] for ours, hf in HF_NAMES.items()
                    if ours.startswith("layers.{n}.") and not ours.endswith("norm")}
HF_LINEAR_NAMES = {ours: hf for hf, ours in OUR_LINEAR_NAMES.items()}


def our_linear_names(targets: list[str]) -> list[str]:
    """LoRA target names (``q_proj`` or ``wq`` style) -> our module names; unknown names are a config error."""
    unknown = [t for t in targets if t not in OUR_LINEAR_NAMES and t not in HF_LINEAR_NAMES]
    if unknown:
        raise ConfigError(f"lora.target_modules {unknown} name no linear layer of our Llama; use any of "
                          f"{sorted(OUR_LINEAR_NAMES)} (or ours: {sorted(HF_LINEAR_NAMES)})")
    return [OUR_LINEAR_NAMES.get(t, t) for t in targets]


def hf_adapter_key(name: str) -> str:
    """A peft tensor name on our model -> the same tensor on transformers' ``LlamaForCausalLM``:
    ``base_model.model.model.layers.3.attention.wq.lora_A.weight`` -> ``...layers.3.self_attn.q_proj.lora_A.weight``.
    """
    def to_hf(match: re.Match) -> str:
        return HF_NAMES["layers.{n}." + match.group(2)].removeprefix("model.").format(n=match.group(1))

    return re.sub(r"layers\.(\d+)\.((?:attention|feed_forward)\.w[qkvo123])\b", to_hf, name)


def adapter_to_hf(folder: str | Path) -> None:
    """Rewrite a peft LoRA folder saved from our model into the adapter transformers + peft load
    (``PeftModel.from_pretrained(AutoModelForCausalLM..., folder)``): tensor names and target modules."""
    from safetensors.torch import load_file, save_file

    weights, config_path = Path(folder) / "adapter_model.safetensors", Path(folder) / "adapter_config.json"
    save_file({hf_adapter_key(k): v for k, v in load_file(weights).items()}, weights, metadata={"format": "pt"})
    config = json.loads(config_path.read_text())
    config["target_modules"] = sorted(HF_LINEAR_NAMES[t] for t in config["target_modules"])
    config["task_type"] = "CAUSAL_LM"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))


class NextTokenView(torch.nn.Module):
    """Our readable Llama (``oidkit.models.llama``) called the way the loop calls a transformers model:
    ``model(input_ids=, position_ids=).logits``. Packed rows restart their positions at 0 per example; each
    restart opens a new segment, so the block-diagonal mask keeps examples apart.

    The attribute is named ``model`` on purpose: module paths then read ``model.layers.N...`` as in
    transformers' ``LlamaForCausalLM``, so a LoRA adapter trained on our model renames cleanly to one
    that peft loads onto the transformers model (``models.llama.hf_adapter_key``).
    """

    def __init__(self, model: LlamaModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, use_cache: bool = False) -> Any:
        return SimpleNamespace(logits=self.model(input_ids, position_ids=position_ids,
                                                 segment_ids=(position_ids == 0).cumsum(dim=-1)))

    def target_loss(self, input_ids: torch.Tensor, position_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Summed loss over the labelled positions (what ``models.loss.TargetLoss`` asks of a model)."""
        return self.model(input_ids, position_ids=position_ids, segment_ids=(position_ids == 0).cumsum(dim=-1),
                          labels=labels)


def load_llama(name_or_path: str | Path, *, dtype: torch.dtype = torch.float32) -> tuple[LlamaModel, Any]:
    """Our model and the folder's tokenizer, from a folder, alias or .gguf (``oidkit.models.resolve_model``)."""
    from transformers import AutoTokenizer

    from oidkit.models import resolve_model

    folder = resolve_model(name_or_path)
    if not Path(folder).is_dir():
        raise ConfigError(f"model {name_or_path!r} is not a local folder, alias or .gguf file; see oid models list")
    return LlamaModel.from_pretrained(folder, dtype=dtype), AutoTokenizer.from_pretrained(folder)

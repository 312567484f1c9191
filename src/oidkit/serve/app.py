"""An OpenAI-compatible HTTP API for one local model: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``.

Concurrent requests share the model's forward passes (continuous batching): a single worker thread owns
the model and a ``DecodeBatch`` of up to ``max_batch_size`` completions; each step runs one batched
forward over all of them, new requests join between steps and finished or cancelled ones leave. Requests
beyond the batch wait in arrival order; a full queue answers 429. Request handlers stay on the event loop
and receive the worker's text deltas through an asyncio queue, so streaming, ``/v1/models`` and error
answers never wait for the model. Every error is an OpenAI-style ``{"error": {"message", "type", "param",
"code"}}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from oidkit.serve.generation import (
    Completion,
    DecodeBatch,
    Delta,
    SamplingParams,
    end_token_ids,
    make_generator,
    rows_independent,
)

DEFAULT_MAX_TOKENS = 512
# Decoding on CPU is bound by reading the weights: a step over 8 rows costs ~1.3x one row's on SmolLM2-135M.
# Rows cost memory: each holds a KV cache (46 KB per token on that model, 380 MB at its full 8k context).
DEFAULT_MAX_BATCH_SIZE = 8


class APIError(Exception):
    """An error answered to the client in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code


def error_response(status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}}, status)


async def disconnected(request: Request) -> None:
    """Return once the client of ``request`` (whose body is read) has closed the connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class SamplingRequest(BaseModel):
    """Fields shared by chat and text completions (unknown fields are ignored, as OpenAI clients send many)."""

    model: str
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None


class ChatRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]


class Job:
    """One request's completions (n per prompt) and the asyncio queue its handler reads ``(index, Delta)``
    events from, followed by ``None`` (or the exception that stopped it)."""

    def __init__(self, completions: list[Completion]):
        self.completions, self.unfinished = completions, len(completions)
        self.loop, self.events = asyncio.get_running_loop(), asyncio.Queue()
        self.cancelled = False  # set by the handler when its client is gone; the worker then drops the job

    def emit(self, event: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self.cancelled = True

    def fail(self, error: Exception) -> None:
        self.emit(error)
        self.cancelled = True


class ModelWorker:
    """The thread that owns the model: decodes up to ``max_batch_size`` completions together, one forward
    pass per step; new requests join between steps, finished and cancelled ones leave."""

    def __init__(self, model: Any, max_batch_size: int, max_queue: int):
        self.jobs: queue.Queue[Job] = queue.Queue(maxsize=max_queue)
        self.batch = DecodeBatch(model)
        self.max_batch_size = max_batch_size
        self.waiting: deque[Completion] = deque()  # completions of taken jobs that have no row yet
        self.owner: dict[Completion, tuple[Job, int]] = {}  # completion -> its job and choice index
        threading.Thread(target=self._run, name="oid-serve-model", daemon=True).start()

    def submit(self, completions: list[Completion]) -> Job:
        """Queue a request's completions; 429 when ``max_queue`` requests are already waiting."""
        job = Job(completions)
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise APIError(429, "the server is busy: too many queued requests, retry later",
                           type="server_busy", code="queue_full") from None
        return job

    def _run(self) -> None:
        while True:
            self._take_jobs()
            self._drop_cancelled()
            newcomers = [self.waiting.popleft() for _ in range(min(len(self.waiting),
                                                                   self.max_batch_size - len(self.batch)))]
            if newcomers:
                try:
                    self._deliver(self.batch.add(newcomers))
                except Exception as e:  # their requests are told; the running ones go on
                    for completion in newcomers:
                        self.owner[completion][0].fail(e)
            if self.batch:
                try:
                    self._deliver(self.batch.step())
                except Exception as e:  # the batched forward failed: its requests are told, the worker lives on
                    for completion in self.batch.completions:
                        self.owner[completion][0].fail(e)

    def _take_jobs(self) -> None:
        """Move queued requests into ``waiting`` while the batch has room; block only when there is nothing to do."""
        while len(self.batch) + len(self.waiting) < self.max_batch_size:
            try:
                job = self.jobs.get(block=not (self.batch or self.waiting))
            except queue.Empty:
                return
            self.owner.update({c: (job, i) for i, c in enumerate(job.completions)})
            self.waiting.extend(job.completions)

    def _drop_cancelled(self) -> None:
        """Free the rows and places of requests whose client left or that failed."""
        gone = {c for c, (job, _) in self.owner.items() if job.cancelled}
        if gone:
            self.waiting = deque(c for c in self.waiting if c not in gone)
            self.batch.keep([c for c in self.batch.completions if c not in gone])
            for completion in gone:
                del self.owner[completion]

    def _deliver(self, deltas: list[tuple[Completion, Delta]]) -> None:
        for completion, delta in deltas:
            job, index = self.owner[completion]
            job.emit((index, delta))
            if completion.finish:
                del self.owner[completion]
                job.unfinished -= 1
                if not job.unfinished:
                    job.emit(None)


def create_app(model: Any, tokenizer: Any, model_name: str, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
               max_queue: int = 64, default_system: str | None = None) -> FastAPI:
    """The FastAPI application serving ``model`` under the name ``model_name``, decoding up to
    ``max_batch_size`` completions together; ``app.state.worker`` is its ``ModelWorker``. ``default_system``
    opens every chat that brings no system message (an application model's tuned prompt)."""
    app = FastAPI(title="oidkit OpenAI-compatible server")
    # An answer must not depend on which other requests share its steps: a model whose rows interact decodes alone.
    app.state.worker = worker = ModelWorker(model, max_batch_size if rows_independent(model) else 1, max_queue)
    end_ids = end_token_ids(model, tokenizer)
    context_length = int(getattr(model.config, "max_position_embeddings", 2048))
    created = int(time.time())

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return error_response(error.status, error.message, error.type, error.param, error.code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        if first.get("type") == "json_invalid":
            return error_response(400, f"the request body is not valid JSON: {first.get('msg')}", code="json_invalid")
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        return error_response(400, f"{'.'.join(location) or 'body'}: {first.get('msg')}",
                              param=location[0] if location else None, code=first.get("type"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), code=str(error.status_code))

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return error_response(500, f"generation failed: {type(error).__name__}: {error}", type="server_error")

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                            "owned_by": "oidkit", "context_length": context_length}]}

    def check(request: SamplingRequest, prompt_ids: list[int], requested: int | None, param: str) -> SamplingParams:
        if request.model != model_name:
            raise APIError(404, f"The model '{request.model}' does not exist; this server serves '{model_name}'",
                           param="model", code="model_not_found")
        room = context_length - len(prompt_ids)
        if room <= 0 or (requested is not None and requested > room):
            raise APIError(400, f"This model's maximum context length is {context_length} tokens. However, you "
                           f"requested {len(prompt_ids) + (requested or 0)} tokens ({len(prompt_ids)} in the "
                           f"{param}, {requested or 0} in the completion). Shorten the {param} or max_tokens.",
                           param=param, code="context_length_exceeded")
        stop = [s for s in ([request.stop] if isinstance(request.stop, str) else request.stop or []) if s]
        return SamplingParams(max_tokens=requested or min(DEFAULT_MAX_TOKENS, room), temperature=request.temperature,
                              top_p=request.top_p, stop=stop, seed=request.seed)

    async def run(prompts: list[list[int]], request: SamplingRequest, params: SamplingParams,
                  chunk: Callable[[int, str | None, str | None], dict], complete: Callable[[list[dict]], dict],
                  http: Request) -> Any:
        # Choice i of a prompt samples with seed + i: choice 0 is the n=1 answer, and every choice is
        # reproducible whichever requests it shares the batch with.
        job = worker.submit([Completion(tokenizer, prompt_ids, params, end_ids,
                                        make_generator(None if params.seed is None else params.seed + i))
                             for prompt_ids in prompts for i in range(request.n)])
        usage = {"prompt_tokens": sum(len(p) for p in prompts), "completion_tokens": 0}

        async def deltas() -> AsyncIterator[tuple[int, Delta]]:
            while (event := await job.events.get()) is not None:
                if isinstance(event, Exception):
                    raise event
                yield event

        def final_usage() -> dict:
            return {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}

        async def collect() -> dict:
            texts = [""] * (len(prompts) * request.n)
            finishes: list[str | None] = [None] * len(texts)
            async for index, delta in deltas():
                texts[index] += delta.text
                if delta.finish_reason:
                    finishes[index] = delta.finish_reason
                    usage["completion_tokens"] += delta.completion_tokens
            return {**complete([{"index": i, "text": t, "finish_reason": f}
                                for i, (t, f) in enumerate(zip(texts, finishes, strict=True))]),
                    "usage": final_usage()}

        if not request.stream:
            answer, gone = asyncio.ensure_future(collect()), asyncio.ensure_future(disconnected(http))
            try:
                await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # the request is over (answered, or its client left): the worker drops what is left of it
                job.cancelled = True
                gone.cancel()
            if not answer.done():
                answer.cancel()
                raise APIError(499, "the client closed the request", code="client_closed_request")
            return answer.result()

        async def sse() -> AsyncIterator[str]:
            started = set()
            try:
                async for index, delta in deltas():
                    if index not in started:
                        started.add(index)
                        yield f"data: {json.dumps(chunk(index, None, None), ensure_ascii=False)}\n\n"
                    if delta.text:
                        yield f"data: {json.dumps(chunk(index, delta.text, None), ensure_ascii=False)}\n\n"
                    if delta.finish_reason:
                        usage["completion_tokens"] += delta.completion_tokens
                        yield f"data: {json.dumps(chunk(index, None, delta.finish_reason), ensure_ascii=False)}\n\n"
            except Exception as e:  # the status line is sent already: report in the stream
                error = {"message": f"generation failed: {e}", "type": "server_error", "param": None, "code": None}
                yield f"data: {json.dumps({'error': error})}\n\n"
            finally:  # also runs when the client disconnects (starlette cancels or closes this generator)
                job.cancelled = True
            if request.stream_options and request.stream_options.include_usage:
                yield f"data: {json.dumps({**chunk(0, None, None), 'choices': [], 'usage': final_usage()})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatRequest, http: Request) -> Any:
        if not tokenizer.chat_template:
            raise APIError(400, f"model '{model_name}' has no chat template; use /v1/completions", param="messages")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in request.messages]
        if default_system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": default_system})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        params = check(request, prompt_ids, request.max_completion_tokens or request.max_tokens, "messages")
        reply_id, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": reply_id, "created": now, "model": model_name, "system_fingerprint": None}

        def chunk(index: int, text: str | None, finish: str | None) -> dict:
            delta = {"role": "assistant", "content": ""} if text is None and finish is None else (
                {"content": text} if text is not None else {})
            return {**head, "object": "chat.completion.chunk",
                    "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}]}

        def complete(choices: list[dict]) -> dict:
            return {**head, "object": "chat.completion", "choices": [
                {"index": c["index"], "message": {"role": "assistant", "content": c["text"]},
                 "finish_reason": c["finish_reason"], "logprobs": None} for c in choices]}

        return await run([prompt_ids], request, params, chunk, complete, http)

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest, http: Request) -> Any:
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        if not prompts:
            raise APIError(400, "prompt is an empty list", param="prompt")
        prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        params = check(request, max(prompt_ids, key=len), request.max_tokens, "prompt")
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_name,
                "object": "text_completion"}

        def chunk(index: int, text: str | None, finish: str | None) -> dict:
            return {**head, "choices": [{"index": index, "text": text or "", "finish_reason": finish,
                                         "logprobs": None}]}

        def complete(choices: list[dict]) -> dict:
            return {**head, "choices": [{**c, "logprobs": None} for c in choices]}

        return await run(prompt_ids, request, params, chunk, complete, http)

    return app


def run_server(name_or_path: str, *, host: str = "127.0.0.1", port: int = 8000, served_name: str | None = None,
               max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, max_queue: int = 64) -> None:
    """Load the model and serve it with uvicorn until interrupted."""
    import uvicorn

    from oidkit.core.app_prompt import read_app_prompt
    from oidkit.models import resolve_model
    from oidkit.models.loading import split_quantize
    from oidkit.serve.generation import load_serving_model, served_model_name

    model, tokenizer = load_serving_model(name_or_path)
    default_system = read_app_prompt(resolve_model(split_quantize(name_or_path)[0]))
    app = create_app(model, tokenizer, served_name or served_model_name(name_or_path), max_batch_size=max_batch_size,
                     max_queue=max_queue, default_system=default_system)
    uvicorn.run(app, host=host, port=port, log_level="info")

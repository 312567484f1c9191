"""An OpenAI-compatible HTTP API for one local model: ``/v1/models`` (and ``/v1/models/{id}``),
``/v1/chat/completions``, ``/v1/completions``; and a chat page at ``/`` (``page.py``).

Concurrent requests share the model's forward passes (continuous batching): a single worker thread owns
the model and a ``DecodeBatch`` of up to ``max_batch_size`` completions; each step runs one batched
forward over all of them, new requests join between steps and finished or cancelled ones leave. Requests
beyond the batch wait in arrival order; a full queue answers 429. Request handlers stay on the event loop
and receive the worker's text deltas through an asyncio queue, so streaming, ``/v1/models`` and error
answers never wait for the model; chat templates and tokenisation run in worker threads, so they never wait
for a long prompt either. Abuse is refused before it costs: a body over the limit is dropped unparsed (413),
a prompt too long in characters to fit the context is refused untokenised (400). Every error is an
OpenAI-style ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status.
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
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from oidkit.core.tool_calls import ToolCallStream, parse_tool_calls, template_message, template_supports_tools
from oidkit.serve.generation import (
    Completion,
    DecodeBatch,
    Delta,
    SamplingParams,
    end_token_ids,
    make_generator,
    rows_independent,
)
from oidkit.serve.page import add_chat_page

DEFAULT_MAX_TOKENS = 512
# Decoding on CPU is bound by reading the weights: a step over 8 rows costs ~1.3x one row's on SmolLM2-135M.
# Rows cost memory: each holds a KV cache (46 KB per token on that model, 380 MB at its full 8k context).
DEFAULT_MAX_BATCH_SIZE = 8
# A prompt the context can hold is ~100 KB of JSON at most (8k tokens, \uXXXX escapes); 8 MB leaves room
# for long message lists and images-as-text, and bounds what one request makes the server parse and keep.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


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


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool turn: the call it answers
    name: str | None = None

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
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # int64, as OpenAI; torch would raise beyond 2^64
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None


class ChatRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]
    logprobs: int | None = None  # the legacy format: refused with a clear 400 rather than ignored


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


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 before anything parses it.

    The body is read here and handed on, so chunked uploads without a Content-Length are bounded too; past
    the limit the rest is read and dropped (kept in memory it would be the attack), so the client, still
    sending, gets its answer instead of a reset connection."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before it finished sending
                return
            size += len(message.get("body", b""))
            if size <= self.max_bytes:
                chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        if size > self.max_bytes:
            response = error_response(413, f"the request body is {size:,} bytes, over this server's limit of "
                                      f"{self.max_bytes:,} bytes (oid serve --max-body-mb)",
                                      code="request_too_large")
            return await response(scope, receive, send)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:  # the body once, then the connection's own messages (disconnect)
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def longest_token_chars(tokenizer: Any) -> int:
    """The most characters of text one token can stand for: its vocabulary entry's length, as byte-level and
    SentencePiece vocabularies spell every character with at least one symbol."""
    return max(len(token) for token in tokenizer.get_vocab())


@dataclass
class Served:
    """What the handlers share: the model's name and limits, its tokenizer and the worker that runs it."""

    name: str
    tokenizer: Any
    worker: ModelWorker
    end_ids: set[int]
    context_length: int
    max_prompt_chars: int  # a longer prompt cannot fit the context whatever it says: refused without tokenizing
    default_system: str | None = None  # opens every chat that brings no system message (an application's prompt)
    created: int = field(default_factory=lambda: int(time.time()))

    def card(self) -> dict:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "oidkit",
                "context_length": self.context_length}


def add_error_handlers(app: FastAPI) -> None:
    """Every error answered in OpenAI's shape: ours, pydantic's (400 naming the field), starlette's, crashes."""

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


def context_exceeded(served: Served, param: str, requested: str) -> APIError:
    return APIError(400, f"This model's maximum context length is {served.context_length} tokens. However, you "
                    f"requested {requested}. Shorten the {param} or max_tokens.", param=param,
                    code="context_length_exceeded")


def check_request(served: Served, request: SamplingRequest, texts: list[str], param: str) -> None:
    """The checks that need no tokens: the model's name, and prompts too long in characters to fit the context."""
    if request.model != served.name:
        raise APIError(404, f"The model '{request.model}' does not exist; this server serves '{served.name}'",
                       param="model", code="model_not_found")
    chars = max(len(text) for text in texts)
    if chars > served.max_prompt_chars:
        raise context_exceeded(served, param, f"a {param} of {chars:,} characters, more than "
                                              f"{served.max_prompt_chars:,} (what its tokens can hold at most)")


async def tokenize(served: Served, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, in a worker thread: a long prompt must not stall the event loop."""
    return await run_in_threadpool(lambda: [served.tokenizer(t, add_special_tokens=False)["input_ids"]
                                            for t in texts])


def sampling_params(served: Served, request: SamplingRequest, prompt_tokens: int, requested: int | None,
                    param: str) -> SamplingParams:
    room = served.context_length - prompt_tokens
    if room <= 0 or (requested is not None and requested > room):
        raise context_exceeded(served, param, f"{prompt_tokens + (requested or 0)} tokens ({prompt_tokens} in "
                                              f"the {param}, {requested or 0} in the completion)")
    stop = [s for s in ([request.stop] if isinstance(request.stop, str) else request.stop or []) if s]
    logprobs = getattr(request, "logprobs", False) is True  # chat's flag; /v1/completions refuses its own
    return SamplingParams(max_tokens=requested or min(DEFAULT_MAX_TOKENS, room), temperature=request.temperature,
                          top_p=request.top_p, stop=stop, seed=request.seed, logprobs=logprobs,
                          top_logprobs=(getattr(request, "top_logprobs", None) or 0) if logprobs else 0)


async def job_deltas(job: Job) -> AsyncIterator[tuple[int, Delta]]:
    while (event := await job.events.get()) is not None:
        if isinstance(event, Exception):
            raise event
        yield event


def total_usage(usage: dict) -> dict:
    return {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}


async def collect(job: Job, usage: dict, complete: Callable[[list[dict]], dict]) -> dict:
    """The whole answer of a non-streaming request."""
    texts = [""] * len(job.completions)
    finishes: list[str | None] = [None] * len(texts)
    logprobs: list[list[dict]] = [[] for _ in texts]
    async for index, delta in job_deltas(job):
        texts[index] += delta.text
        logprobs[index] += delta.logprobs or []
        if delta.finish_reason:
            finishes[index] = delta.finish_reason
            usage["completion_tokens"] += delta.completion_tokens
    return {**complete([{"index": i, "text": t, "finish_reason": f, "logprobs": lp}
                        for i, (t, f, lp) in enumerate(zip(texts, finishes, logprobs, strict=True))]),
            "usage": total_usage(usage)}


async def answer_whole(job: Job, usage: dict, complete: Callable[[list[dict]], dict], http: Request) -> dict:
    """The whole answer, unless the client leaves first (499): either way the worker drops what is left."""
    answer, gone = asyncio.ensure_future(collect(job, usage, complete)), asyncio.ensure_future(disconnected(http))
    try:
        await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        job.cancelled = True
        gone.cancel()
    if not answer.done():
        answer.cancel()
        raise APIError(499, "the client closed the request", code="client_closed_request")
    return answer.result()


# chunk(index, text, finish, logprobs): one streamed chunk of choice ``index``: its opening (no text, no
# finish), new text (with the log-probabilities of its tokens, when asked for) or its finish.
Chunk = Callable[[int, str | None, str | None, list[dict] | None], dict]


async def server_sent_events(job: Job, usage: dict, chunk: Chunk, include_usage: bool) -> AsyncIterator[str]:
    """The answer as server-sent events: a first chunk per choice, its text deltas, its finish, then [DONE]."""
    def event(data: dict) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    started = set()
    try:
        async for index, delta in job_deltas(job):
            if index not in started:
                started.add(index)
                yield event(chunk(index, None, None, None))
            if delta.text or delta.logprobs:
                yield event(chunk(index, delta.text, None, delta.logprobs))
            if delta.finish_reason:
                usage["completion_tokens"] += delta.completion_tokens
                yield event(chunk(index, None, delta.finish_reason, None))
    except Exception as e:  # the status line is sent already: report in the stream
        yield event({"error": {"message": f"generation failed: {e}", "type": "server_error", "param": None,
                               "code": None}})
    finally:  # also runs when the client disconnects (starlette cancels or closes this generator)
        job.cancelled = True
    if include_usage:
        yield event({**chunk(0, None, None, None), "choices": [], "usage": total_usage(usage)})
    yield "data: [DONE]\n\n"


async def generate(served: Served, prompts: list[list[int]], request: SamplingRequest, params: SamplingParams,
                   chunk: Chunk, complete: Callable[[list[dict]], dict], http: Request) -> Any:
    """Queue ``request.n`` completions per prompt and answer them, whole or streamed."""
    # Choice i of a prompt samples with seed + i: choice 0 is the n=1 answer, and every choice is
    # reproducible whichever requests it shares the batch with.
    job = served.worker.submit([Completion(served.tokenizer, prompt_ids, params, served.end_ids,
                                           make_generator(None if params.seed is None else params.seed + i))
                                for prompt_ids in prompts for i in range(request.n)])
    usage = {"prompt_tokens": sum(len(p) for p in prompts), "completion_tokens": 0}
    if not request.stream:
        return await answer_whole(job, usage, complete, http)
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return StreamingResponse(server_sent_events(job, usage, chunk, include_usage), media_type="text/event-stream")


def template_messages(messages: list[ChatMessage]) -> list[dict]:
    """The request's messages as the chat template reads them: text content, tool calls in the template's shape
    (arguments as objects), a tool turn's call id and name."""
    converted = []
    for m in messages:
        message: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        if m.tool_calls:
            message["tool_calls"] = [c.model_dump() for c in m.tool_calls]
        message.update({k: v for k, v in (("tool_call_id", m.tool_call_id), ("name", m.name)) if v is not None})
        converted.append(template_message(message))
    return converted


def tools_to_render(served: Served, request: ChatRequest) -> list[dict] | None:
    """The tool definitions for the template (``None``: answer in text, nothing parsed); a 400 when the request
    uses tools and the model's template does not read them, or asks for a choice nothing here can enforce."""
    uses_tools = bool(request.tools) or any(m.tool_calls or m.role == "tool" for m in request.messages)
    if uses_tools and not template_supports_tools(served.tokenizer.chat_template):
        raise APIError(400, f"model '{served.name}' has a chat template that does not support tools (it never reads "
                       "`tools`): tool definitions, assistant tool_calls and tool messages would be dropped. Serve a "
                       "model whose template supports tools (Qwen2.5, Hermes, Llama 3.1, or one trained with "
                       "data.chat_template=chatml-tools), or send the conversation without them.",
                       param="tools", code="tools_not_supported")
    if request.tool_choice not in (None, "auto", "none"):
        raise APIError(400, f"tool_choice {request.tool_choice!r} cannot be enforced here (generation is not "
                       "constrained to a call); use 'auto' (the model decides) or 'none'", param="tool_choice")
    return request.tools if request.tools and request.tool_choice != "none" else None


def openai_logprobs(entries: list[dict] | None) -> dict | None:
    return None if entries is None else {"content": entries}


async def chat_completion(served: Served, request: ChatRequest, http: Request) -> Any:
    if not served.tokenizer.chat_template:
        raise APIError(400, f"model '{served.name}' has no chat template; use /v1/completions", param="messages")
    check_request(served, request, ["".join(m.text() for m in request.messages)], "messages")
    tools = tools_to_render(served, request)
    messages = template_messages(request.messages)
    if served.default_system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": served.default_system})

    def template_and_tokenize() -> list[int]:  # one worker-thread hop for both: each hop delays the first token
        text = served.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
        return served.tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt_ids = await run_in_threadpool(template_and_tokenize)
    params = sampling_params(served, request, len(prompt_ids), request.max_completion_tokens or request.max_tokens,
                             "messages")
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served.name,
            "system_fingerprint": None}
    streams: dict[int, ToolCallStream] = {}  # per choice, when tool calls are parsed out of the text

    def chunk(index: int, text: str | None, finish: str | None, logprobs: list[dict] | None) -> dict:
        if text is None and finish is None:
            delta: dict[str, Any] = {"role": "assistant", "content": ""}
        elif text is not None:
            delta = {"content": streams.setdefault(index, ToolCallStream()).feed(text) if tools else text}
        else:
            delta, calls = {}, []
            if tools:
                rest, calls = streams.setdefault(index, ToolCallStream()).finish()
                delta = {"content": rest} if rest else {}
                if calls:
                    delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
            finish = "tool_calls" if calls else finish
        return {**head, "object": "chat.completion.chunk", "choices": [
            {"index": index, "delta": delta, "finish_reason": finish,
             "logprobs": openai_logprobs(logprobs if params.logprobs else None)}]}

    def message(text: str) -> dict:
        content, calls = parse_tool_calls(text) if tools else (text, [])
        return {"role": "assistant", "content": content or None, "tool_calls": calls} if calls else {
            "role": "assistant", "content": content}

    def complete(choices: list[dict]) -> dict:
        return {**head, "object": "chat.completion", "choices": [
            {"index": c["index"], "message": (answer := message(c["text"])),
             "finish_reason": "tool_calls" if answer.get("tool_calls") else c["finish_reason"],
             "logprobs": openai_logprobs(c["logprobs"] if params.logprobs else None)} for c in choices]}

    return await generate(served, [prompt_ids], request, params, chunk, complete, http)


async def text_completion(served: Served, request: CompletionRequest, http: Request) -> Any:
    prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
    if not prompts:
        raise APIError(400, "prompt is an empty list", param="prompt")
    if request.logprobs is not None:
        raise APIError(400, "logprobs is not supported on /v1/completions; use /v1/chat/completions with "
                       "\"logprobs\": true (and top_logprobs)", param="logprobs")
    check_request(served, request, prompts, "prompt")
    prompt_ids = await tokenize(served, prompts)
    params = sampling_params(served, request, max(len(p) for p in prompt_ids), request.max_tokens, "prompt")
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served.name,
            "object": "text_completion"}

    def chunk(index: int, text: str | None, finish: str | None, logprobs: list[dict] | None) -> dict:
        return {**head, "choices": [{"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}]}

    def complete(choices: list[dict]) -> dict:
        return {**head, "choices": [{**c, "logprobs": None} for c in choices]}

    return await generate(served, prompt_ids, request, params, chunk, complete, http)


def add_routes(app: FastAPI, served: Served) -> None:
    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [served.card()]}

    @app.get("/v1/models/{model_id:path}")
    async def retrieve_model(model_id: str) -> dict:
        if model_id != served.name:
            raise APIError(404, f"The model '{model_id}' does not exist; this server serves '{served.name}'",
                           param="model", code="model_not_found")
        return served.card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatRequest, http: Request) -> Any:
        return await chat_completion(served, request, http)

    @app.post("/v1/completions")
    async def completions(request: CompletionRequest, http: Request) -> Any:
        return await text_completion(served, request, http)


def create_app(model: Any, tokenizer: Any, model_name: str, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
               max_queue: int = 64, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               default_system: str | None = None) -> FastAPI:
    """The FastAPI application serving ``model`` under the name ``model_name``, decoding up to
    ``max_batch_size`` completions together and refusing bodies over ``max_body_bytes`` (413);
    ``app.state.worker`` is its ``ModelWorker``. ``default_system`` opens every chat that brings no system
    message (an application model's tuned prompt)."""
    app = FastAPI(title="oidkit OpenAI-compatible server")
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    # An answer must not depend on which other requests share its steps: a model whose rows interact decodes alone.
    worker = ModelWorker(model, max_batch_size if rows_independent(model) else 1, max_queue)
    context_length = int(getattr(model.config, "max_position_embeddings", 2048))
    served = Served(model_name, tokenizer, worker, end_token_ids(model, tokenizer), context_length,
                    context_length * longest_token_chars(tokenizer), default_system)
    app.state.worker = worker
    add_error_handlers(app)
    add_routes(app, served)
    add_chat_page(app)
    return app


def run_server(name_or_path: str, *, host: str = "127.0.0.1", port: int = 8000, served_name: str | None = None,
               max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, max_queue: int = 64,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, device: str = "auto") -> None:
    """Load the model (on ``device``: auto, cpu or cuda) and serve it with uvicorn until interrupted."""
    import uvicorn

    from oidkit.core.app_prompt import read_app_prompt
    from oidkit.serve.generation import load_serving_model, served_model_name

    model, tokenizer = load_serving_model(name_or_path, device=device, one_row=max_batch_size == 1)
    default_system = read_app_prompt(model.name_or_path)  # the folder loading resolved the name to
    app = create_app(model, tokenizer, served_name or served_model_name(name_or_path), max_batch_size=max_batch_size,
                     max_queue=max_queue, max_body_bytes=max_body_bytes, default_system=default_system)
    uvicorn.run(app, host=host, port=port, log_level="info")

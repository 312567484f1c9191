"""Tool calls through a chat template: what the template is given, and the calls read back from model text.

Chat templates that support tools (Qwen2.5, Hermes, Llama 3.1, ...) read a ``tools`` list and assistant
``tool_calls`` as ``{"type": "function", "function": {"name", "arguments": {...}}}`` with the arguments as
an object. Records (ShareGPT/glaive ``function_call`` turns, LLaMA-Factory's ``{name, arguments}``) and
OpenAI requests (arguments as a JSON string) are brought to that one shape here, so training and serving
render the same text. Models trained on such templates answer with Hermes-style blocks,
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; ``parse_tool_calls`` turns them back into
OpenAI ``tool_calls``.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from typing import Any

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOL_CALL_BLOCK = re.compile(re.escape(TOOL_CALL_OPEN) + r"\s*(.*?)\s*" + re.escape(TOOL_CALL_CLOSE), re.DOTALL)


def template_supports_tools(template: str | None) -> bool:
    """Whether a chat template reads the ``tools`` variable (templates without it drop tool definitions)."""
    return bool(template) and re.search(r"\btools\b", template) is not None


def template_tools(tools: Any) -> list[dict] | None:
    """A record's or request's tool definitions as a list of dicts (records may keep them as a JSON string)."""
    if tools in (None, "", []):
        return None
    if isinstance(tools, str):
        tools = json.loads(tools)
    return [tools] if isinstance(tools, dict) else list(tools)


def template_tool_call(call: Any) -> Any:
    """One call as templates read it: ``{"type": "function", "function": {"name", "arguments": object}}``."""
    if not isinstance(call, dict):
        return call
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # arguments that are not JSON stay the text they are
            arguments = json.loads(arguments)
    return {"type": "function", "function": {"name": function.get("name"), "arguments": arguments}}


def template_message(message: dict) -> dict:
    """A message with its tool calls in the template's shape (other keys unchanged).

    A content that is only the JSON of the calls themselves (LLaMA-Factory / glaive ``function_call`` turns
    keep their text) is emptied, so the template does not write the call twice.
    """
    calls = message.get("tool_calls")
    if not calls:
        return message
    content = message.get("content")
    if isinstance(content, str) and content.strip():
        with contextlib.suppress(ValueError):
            if json.loads(content) in (calls, calls[0]):
                content = ""
    return {**message, "content": content, "tool_calls": [template_tool_call(c) for c in calls]}


def parse_tool_calls(text: str) -> tuple[str, list[dict]]:
    """``(content, tool_calls)`` from model text: each ``<tool_call>{json}</tool_call>`` whose JSON names a
    function becomes an OpenAI tool call (arguments as a JSON string); anything else stays in the content."""
    calls: list[dict] = []

    def take(match: re.Match) -> str:
        try:
            found = json.loads(match[1])
        except ValueError:
            return match[0]
        if not isinstance(found, dict) or not isinstance(found.get("name"), str):
            return match[0]
        arguments = found.get("arguments", found.get("parameters", {}))
        calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": found["name"], "arguments": arguments if isinstance(arguments, str)
                                   else json.dumps(arguments, ensure_ascii=False)}})
        return ""

    content = TOOL_CALL_BLOCK.sub(take, text)
    return (content.strip() if calls else content), calls


class ToolCallStream:
    """Streamed text split into content to send at once and tool calls parsed at the end.

    Text before the first ``<tool_call>`` goes out as it arrives (minus a tail that could be the start of
    the tag); from the tag on it is held, and ``finish`` parses it: the calls, and any text that was not one.
    """

    def __init__(self) -> None:
        self.pending, self.calling = "", False

    def feed(self, text: str) -> str:
        """Take new model text; return the content that can be sent now."""
        self.pending += text
        if self.calling:
            return ""
        at = self.pending.find(TOOL_CALL_OPEN)
        if at >= 0:
            self.calling = True
            content, self.pending = self.pending[:at], self.pending[at:]
            return content
        keep = next((n for n in range(min(len(TOOL_CALL_OPEN) - 1, len(self.pending)), 0, -1)
                     if TOOL_CALL_OPEN.startswith(self.pending[-n:])), 0)
        content, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return content

    def finish(self) -> tuple[str, list[dict]]:
        """The held text that is not a call, and the calls."""
        text, self.pending = self.pending, ""
        return parse_tool_calls(text)

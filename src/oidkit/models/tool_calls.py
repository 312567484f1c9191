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

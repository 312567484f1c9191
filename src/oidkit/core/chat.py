"""Chat template -> token ids and shifted labels, with the loss only where it belongs.

The assistant spans are found by rendering the template incrementally: the text of ``messages[:i]``
with the generation prompt ends exactly where assistant turn ``i`` starts, and the text of
``messages[:i+1]`` ends where it stops. Character spans then map to tokens through the tokenizer's
offsets, so any template whose renderings of prefixes are prefixes of the full rendering works
(ChatML, Llama 3, Mistral, SmolLM2's default-system-prompt template, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from oidkit.core.tool_calls import template_message, template_supports_tools, template_tools
from oidkit.errors import ConfigError
from oidkit.records import with_reasoning

IGNORE_INDEX = -100
# ChatML, the layout SmolLM2 uses; data.chat_template=chatml and the tiny test model take it.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# ChatML with tools (data.chat_template=chatml-tools) the way Qwen2.5 and Hermes templates do it: tool
# signatures in the system turn, calls as <tool_call>{json}</tool_call> in the assistant turn, results as
# <tool_response> in a user turn.
CHATML_TOOLS_TEMPLATE = (
    "{% if tools %}"
    "{{ '<|im_start|>system\\n' }}"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}{% endif %}"
    "{{ '# Tools\\n\\nFunction signatures are inside <tools></tools>:\\n<tools>' }}"
    "{% for tool in tools %}{{ '\\n' + (tool | tojson) }}{% endfor %}"
    "{{ '\\n</tools>\\n\\nFor each function call, return a JSON object inside <tool_call></tool_call>:\\n"
    "<tool_call>\\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}"
    "{% elif messages[0]['role'] == 'system' %}"
    "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' + (message['content'] or '') }}"
    "{% for call in message['tool_calls'] or [] %}"
    "{% if message['content'] or not loop.first %}{{ '\\n' }}{% endif %}"
    "{{ '<tool_call>\\n{\"name\": ' + (call['function']['name'] | tojson) + ', \"arguments\": '"
    " + (call['function']['arguments'] | tojson) + '}\\n</tool_call>' }}"
    "{% endfor %}"
    "{{ '<|im_end|>\\n' }}"
    "{% elif message['role'] == 'tool' %}"
    "{{ '<|im_start|>user\\n<tool_response>\\n' + message['content'] + '\\n</tool_response><|im_end|>\\n' }}"
    "{% elif message['role'] != 'system' or not loop.first %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TrainOn = Literal["assistant", "all", "last_assistant"]
# What training does with an assistant turn's ``reasoning``: learn it (the point of reasoning data), keep it
# as context without loss, or leave it out of the text.
Reasoning = Literal["train", "mask", "drop"]
# How records become template input; part of the tokenisation cache key, so a change here is not served stale.
# 2: tool calls in the template's shape, and the record's tools given to templates that read them.
RENDERING_VERSION = 2


def resolve_chat_template(tokenizer: Any, chat_template: str | None) -> str:
    """The template to use: the tokenizer's own, ``chatml``, ``chatml-tools``, a ``.jinja`` file, or an inline
    template."""
    if chat_template is None:
        if not tokenizer.chat_template:
            raise ConfigError("the tokenizer has no chat template; set data.chat_template to 'chatml' or a .jinja file")
        return tokenizer.chat_template
    if chat_template == "chatml":
        return CHATML_TEMPLATE
    if chat_template == "chatml-tools":
        return CHATML_TOOLS_TEMPLATE
    if chat_template.endswith(".jinja"):
        path = Path(chat_template)
        if not path.exists():
            raise ConfigError(f"data.chat_template: file {chat_template} not found")
        return path.read_text()
    return chat_template


def plain_messages(record: dict, template: str = "", reasoning: Reasoning = "train") -> list[dict]:
    """The messages as the template sees them: role and content (tool calls and names when present).

    Reasoning goes where the template reads it, ``reasoning_content`` (Qwen3, DeepSeek-R1 templates);
    a template without it gets the reasoning inline before the answer as ``<think>...</think>``.
    ``reasoning="drop"`` leaves it out. Tool calls take the shape templates read (as ``oid serve`` renders them).
    """
    keep = ("role", "content", "tool_calls", "name")
    messages = []
    for m in record["messages"]:
        message = template_message({k: m[k] for k in keep if m.get(k) is not None})
        if m.get("reasoning") and reasoning != "drop":
            if "reasoning_content" in template:
                message["reasoning_content"] = m["reasoning"]
            else:
                message["content"] = with_reasoning(m)
        messages.append(message)
    return messages


def reasoning_char_spans(full: str, messages: list[dict], record: dict, spans: list[tuple[int, int]]
                         ) -> list[tuple[int, int]]:
    """Where each assistant turn's reasoning (with its ``<think>`` tags when inline) sits in ``full``."""
    found = []
    assistants = [(m, source) for m, source in zip(messages, record["messages"], strict=True)
                  if m["role"] == "assistant"]
    for (message, source), (start, end) in zip(assistants, spans, strict=True):
        if not source.get("reasoning"):
            continue
        inline = with_reasoning(source)
        text = inline[: len(inline) - len(source["content"])] if message["content"] == inline else source["reasoning"]
        at = full.find(text, start, end)
        if at >= 0:
            found.append((at, at + len(text)))
    return found


def render(tokenizer: Any, template: str, messages: list[dict], generation_prompt: bool = False,
           tools: list[dict] | None = None) -> str:
    """The template's text for ``messages`` (and the tool definitions, for templates that read them)."""
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, tools=tools,
                                         add_generation_prompt=generation_prompt)


def record_tools(record: dict, template: str) -> list[dict] | None:
    """The record's tool definitions when the template reads ``tools`` (others would drop them anyway)."""
    return template_tools(record.get("tools")) if template_supports_tools(template) else None


def assistant_char_spans(tokenizer: Any, template: str, messages: list[dict], tools: list[dict] | None = None
                         ) -> tuple[str, list[tuple[int, int]]]:
    """The full text and the ``(start, end)`` character span of every assistant turn in it."""
    full = render(tokenizer, template, messages, tools=tools)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(render(tokenizer, template, messages[:i], generation_prompt=True, tools=tools)) if i else 0
        end_text = render(tokenizer, template, messages[: i + 1], tools=tools)
        if not full.startswith(end_text):
            raise ConfigError("the chat template does not render conversation prefixes as prefixes of the whole "
                              "conversation, so assistant turns cannot be located; use data.train_on=all or "
                              "another data.chat_template")
        spans.append((start, len(end_text)))
    return full, spans


def encode_record(
    record: dict, tokenizer: Any, template: str, *, train_on: TrainOn = "assistant", max_seq_len: int = 512,
    overlong: Literal["drop", "truncate"] = "drop", reasoning: Reasoning = "train",
) -> tuple[dict | None, str]:
    """``({"input_ids", "labels"}, status)`` for one record; status is ``ok``, ``truncated`` or ``dropped``.

    ``labels[t]`` is the token the model must predict at position ``t`` (already shifted), or -100, so
    records concatenate for packing without a target crossing a record boundary. ``truncated`` means tokens
    after the first assistant answer were cut; a cut inside the first answer is ``dropped`` unless
    ``overlong="truncate"``, which keeps it as ``truncated_answer``. ``reasoning`` (see
    :func:`plain_messages`): ``train`` learns the reasoning tokens with the answer, ``mask`` keeps them in the
    text without loss, ``drop`` leaves them out.
    """
    messages = plain_messages(record, template, reasoning)
    full, spans = assistant_char_spans(tokenizer, template, messages, record_tools(record, template))
    masked = reasoning_char_spans(full, messages, record, spans) if reasoning == "mask" else []
    encoding = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
    if train_on == "last_assistant":
        spans = spans[-1:]
    if train_on == "all":
        trained = [True] * len(ids)
    else:
        trained = [any(s <= start < e for s, e in spans) and not any(s <= start < e for s, e in masked)
                   for start, _ in offsets]
    status = "ok"
    if len(ids) > max_seq_len:
        first_answer_end = sum(1 for start, _ in offsets if start < spans[0][1]) if spans else 0
        if first_answer_end > max_seq_len:
            if overlong == "drop":
                return None, "dropped"
            status = "truncated_answer"
        else:
            status = "truncated"
        ids, trained = ids[:max_seq_len], trained[:max_seq_len]
    labels = [ids[t + 1] if trained[t + 1] else IGNORE_INDEX for t in range(len(ids) - 1)] + [IGNORE_INDEX]
    if all(label == IGNORE_INDEX for label in labels):
        return None, "dropped"
    return {"input_ids": ids, "labels": labels}, status

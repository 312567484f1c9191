"""Message ``content`` given as a list of parts (OpenAI multimodal, ``value``-style reasoning files).

Reading folds the parts into the canonical message: text parts joined in order (no separator, as chat
templates concatenate them), each image / audio / video part replaced by a placeholder (``<image>``,
``<audio>``, ``<video>``, the convention LLaMA-Factory files use) with its URL, path or data kept verbatim
in the record's ``media``, reasoning parts joined into ``reasoning``, tool-call parts appended to
``tool_calls``. A *skeleton* of the parts (each part without its payload, texts replaced by their length)
lets the writer rebuild the exact source parts; without it (another source format, edited text) the
writer splits the content at the placeholders.
"""

from __future__ import annotations

from typing import Any

TEXT_KEYS = ("text", "value", "content")
PLACEHOLDERS = {"images": "<image>", "audios": "<audio>", "videos": "<video>"}
# part type -> media list of the canonical record
MEDIA_PARTS = {"image_url": "images", "image": "images", "input_image": "images",
               "input_audio": "audios", "audio": "audios", "audio_url": "audios",
               "video": "videos", "video_url": "videos"}
REASONING_PARTS = ("reasoning", "thinking")
TOOL_CALL_PARTS = ("tool_call", "tool_use", "function_call")
MEDIA_LOCATORS = ("url", "data", "path")  # the key holding the media in a nested payload, e.g. image_url.url


def from_parts(parts: list, turn: int) -> dict[str, Any]:
    """``{content, reasoning, media: [(kind, value)], tool_calls, skeleton}`` of one message's parts; a part
    that is not an object with a ``type``, or a text part without text, is a ``ValueError``."""
    content, reasoning, media, tool_calls, skeleton = [], [], [], [], []
    for n, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ValueError(f"turn {turn} content part {n} is not an object with a 'type'")
        kind = part["type"]
        if kind == "text" or kind in REASONING_PARTS:
            key = next((k for k in TEXT_KEYS if isinstance(part.get(k), str)), None)
            if key is None:
                raise ValueError(f"turn {turn} content part {n} ({kind}) has no text")
            (content if kind == "text" else reasoning).append(part[key])
            skeleton.append({**part, key: len(part[key])})
        elif kind in MEDIA_PARTS and (found := _media_payload(part, kind)) is not None:
            value, shell = found
            media.append((MEDIA_PARTS[kind], value))
            content.append(PLACEHOLDERS[MEDIA_PARTS[kind]])
            skeleton.append(shell)
        elif kind in TOOL_CALL_PARTS and (key := next((k for k in (kind, "value", "function") if k in part),
                                                      None)):
            tool_calls.append(part[key])
            skeleton.append({**part, key: None, "_payload": key})
        else:  # a part type we do not know (or without payload) stays, verbatim, where it was
            skeleton.append({"_verbatim": part})
    return {"content": "".join(content), "reasoning": "".join(reasoning), "media": media,
            "tool_calls": tool_calls, "skeleton": skeleton}


def _media_payload(part: dict, kind: str) -> tuple[Any, dict] | None:
    """The media value (URL, path or data, verbatim) and the part with ``None`` in its place (keys keep
    their order, so the rebuilt part serialises byte for byte as the source did); ``None`` without one."""
    payload = part.get(kind)
    if isinstance(payload, dict):
        locator = next((k for k in MEDIA_LOCATORS if payload.get(k) is not None), None)
        if locator is not None:
            return payload[locator], {**part, kind: {**payload, locator: None}, "_payload": f"{kind}.{locator}"}
    key = next((k for k in (kind, *MEDIA_LOCATORS) if isinstance(part.get(k), str)), None)
    return None if key is None else (part[key], {**part, key: None, "_payload": key})


def to_parts(message: dict, media: dict[str, list], used: dict[str, int], skeleton: list | None) -> list[dict]:
    """The parts of a message: the source skeleton refilled when it still fits the message, else built from
    the content (split at placeholders), ``reasoning`` and ``media`` in OpenAI's shape. ``used`` counts the
    media of each kind taken by earlier messages (placeholders number media across the conversation)."""
    if skeleton is not None:
        rebuilt = _refill(skeleton, message, media, dict(used))
        if rebuilt is not None:
            parts, after = rebuilt
            used.update(after)
            return parts
    parts: list[dict] = []
    if message.get("reasoning"):
        parts.append({"type": "reasoning", "text": message["reasoning"]})
    text, rest = "", message.get("content") or ""
    while rest:
        found = [(rest.find(mark), kind) for kind, mark in PLACEHOLDERS.items() if mark in rest]
        if not found:
            text, rest = text + rest, ""
            break
        at, kind = min(found)
        if rest[:at]:
            parts.append({"type": "text", "text": rest[:at]})
        rest = rest[at + len(PLACEHOLDERS[kind]):]
        value = _take(media, used, kind)
        if value is None:  # more placeholders than media: the placeholder is plain text
            parts.append({"type": "text", "text": PLACEHOLDERS[kind]})
        else:
            parts.append(_openai_media_part(kind, value))
    if text:
        parts.append({"type": "text", "text": text})
    return parts


def _openai_media_part(kind: str, value: Any) -> dict:
    if kind == "audios":
        return {"type": "input_audio", "input_audio": value if isinstance(value, dict) else {"data": value}}
    part_type = "image_url" if kind == "images" else "video_url"
    return {"type": part_type, part_type: value if isinstance(value, dict) else {"url": value}}


def _take(media: dict[str, list], used: dict[str, int], kind: str) -> Any:
    """The next media value of ``kind``, or ``None`` when there is none left."""
    values, n = media.get(kind) or [], used.get(kind, 0)
    used[kind] = n + 1
    return values[n] if n < len(values) else None


def _refill(skeleton: list, message: dict, media: dict[str, list], used: dict[str, int]
            ) -> tuple[list[dict], dict[str, int]] | None:
    """The source parts again and the media counts after them, or ``None`` when the message no longer
    matches the skeleton (it was edited)."""
    texts = {"text": message.get("content") or "", "reasoning": message.get("reasoning") or ""}
    position = {"text": 0, "reasoning": 0}
    calls = iter(message.get("tool_calls") or [])
    parts = []
    for shell in skeleton:
        if "_verbatim" in shell:
            parts.append(shell["_verbatim"])
            continue
        kind = shell["type"]
        if kind == "text" or kind in REASONING_PARTS:
            stream = "text" if kind == "text" else "reasoning"
            key = next(k for k in TEXT_KEYS if isinstance(shell.get(k), int))
            start = position[stream]
            position[stream] += shell[key]
            parts.append({**shell, key: texts[stream][start:position[stream]]})
        elif kind in MEDIA_PARTS:
            kind_media = MEDIA_PARTS[kind]
            mark = PLACEHOLDERS[kind_media]
            if texts["text"][position["text"]:position["text"] + len(mark)] != mark:
                return None
            position["text"] += len(mark)
            value = _take(media, used, kind_media)
            part = {k: v for k, v in shell.items() if k != "_payload"}
            outer, _, inner = shell["_payload"].partition(".")
            part[outer] = {**part[outer], inner: value} if inner else value
            parts.append(part)
        else:
            part = {k: v for k, v in shell.items() if k != "_payload"}
            part[shell["_payload"]] = next(calls, None)
            parts.append(part)
    if position != {"text": len(texts["text"]), "reasoning": len(texts["reasoning"])}:
        return None
    return parts, used

"""Interactive terminal chat with a local model: history, ``/reset``, ``/system``, streamed answers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from oidkit.serve.generation import SamplingParams, generate_stream

HELP = "commands: /reset (forget the conversation), /system TEXT (set the system prompt and reset), /quit"


def chat_loop(model: Any, tokenizer: Any, lines: Iterable[str], write: Callable[[str], None],
              params: SamplingParams, system: str | None = None) -> list[dict]:
    """Answer each input line with a streamed reply, keeping the history; returns the final history.

    ``lines`` is any iterable of user lines (``sys.stdin`` interactively, a list in tests) and ``write``
    prints a piece of text without a newline.
    """
    def fresh() -> list[dict]:
        return [{"role": "system", "content": system}] if system else []

    history = fresh()
    write(f"{HELP}\n> ")
    for line in lines:
        line = line.rstrip("\n")
        if line.strip() in ("/quit", "/exit"):
            break
        if line.strip() == "/reset":
            history = fresh()
            write("(conversation reset)\n> ")
            continue
        if line.startswith("/system"):
            system = line[len("/system"):].strip() or None
            history = fresh()
            write(f"(system prompt {'set' if system else 'cleared'}; conversation reset)\n> ")
            continue
        if not line.strip():
            write("> ")
            continue
        history.append({"role": "user", "content": line})
        text = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        reply = ""
        for delta in generate_stream(model, tokenizer, prompt_ids, params):
            write(delta.text)
            reply += delta.text
        history.append({"role": "assistant", "content": reply})
        write("\n> ")
    return history

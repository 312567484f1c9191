"""Ask a running OpenAI-compatible server one question with the official ``openai`` client.

    python -m oidkit.serve.ask "What is the capital of France?" --base-url http://127.0.0.1:8000/v1

Waits (``--wait`` seconds) for the server to come up, so it can follow ``oid serve MODEL &`` directly.
The model defaults to the first one the server lists.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from oidkit.errors import OidError


def wait_for_server(client, seconds: float) -> str:
    """The first model id the server lists, retrying until it answers or ``seconds`` pass."""
    import openai

    deadline = time.monotonic() + seconds
    while True:
        try:
            return client.models.list().data[0].id
        except openai.APIConnectionError:
            if time.monotonic() > deadline:
                raise OidError(f"no server answered at {client.base_url} within {seconds:.0f} s; "
                               "start one with `oid serve MODEL --port PORT`") from None
            time.sleep(0.5)


def ask(question: str, *, base_url: str = "http://127.0.0.1:8000/v1", model: str | None = None,
        max_tokens: int = 128, temperature: float = 0.0, wait: float = 60.0, stream: bool = True,
        write=sys.stdout.write) -> str:
    """Send one chat question and return the answer, streaming it through ``write`` as it arrives."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "not-needed"), max_retries=0)
    model = model or wait_for_server(client, wait)
    messages = [{"role": "user", "content": question}]
    if not stream:
        answer = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                temperature=temperature).choices[0].message.content or ""
        write(answer)
        return answer
    answer = ""
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                temperature=temperature, stream=True):
        piece = chunk.choices[0].delta.content if chunk.choices else None
        if piece:
            write(piece)
            answer += piece
    return answer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default=None, help="model name (default: the first the server lists)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the server to start")
    args = parser.parse_args(argv)
    try:
        ask(args.question, base_url=args.base_url, model=args.model, max_tokens=args.max_tokens, wait=args.wait)
    except OidError as e:
        sys.exit(f"error: {e}")
    print()


if __name__ == "__main__":
    main()

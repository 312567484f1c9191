"""``oid arena``: two models answer the same prompt side by side, and a person picks the better answer blind.

Which model is shown as A is decided per (prompt, annotator) by a hash, so it is random across prompts,
stable across reloads and restarts, and the page never receives a model name before the vote. Votes go to
the review app's append-only log (:class:`oidkit.review.log.ReviewLog`, action ``vote``): one fsynced line
per vote with who and when, so a killed server loses no acknowledged vote. ``arena_report`` turns the log
into win rates with Wilson 95% intervals and the agreement of annotators who voted on the same prompts.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from oidkit.core.stats import wilson_interval
from oidkit.core.web import mount_static
from oidkit.errors import ConfigError
from oidkit.io import read_records
from oidkit.models.backends import GenerationRequest
from oidkit.review.agreement import pair_agreement
from oidkit.review.app import LOCAL_HOSTS, STATIC, add_guard
from oidkit.review.log import VOTES, ReviewLog

MAX_PROMPT_CHARS = 20_000


@dataclass
class ArenaPrompt:
    """A conversation to continue: ``key`` names it in the log (``FILE:ID``, or ``typed:HASH``)."""

    key: str
    messages: list[dict]


def load_prompts(path: str | Path, *, limit: int | None = None) -> list[ArenaPrompt]:
    """Prompts from any records file ``oid`` reads (canonical, ShareGPT, Alpaca, OpenAI, ...): the turns before
    the last assistant answer (a held-out split's reference answers are left out), or all turns when the
    conversation ends with the user."""
    prompts = []
    for record in read_records(path):
        messages = [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
        while messages and messages[-1]["role"] == "assistant":
            messages.pop()
        if messages and messages[-1]["role"] == "user":
            prompts.append(ArenaPrompt(f"{Path(path).name.split('.')[0]}:{record['id']}", messages))
        if limit is not None and len(prompts) >= limit:
            break
    if not prompts:
        raise ConfigError(f"{path}: no conversation with a user turn to ask; give records (e.g. a held-out split)")
    return prompts


def typed_prompt(text: str) -> ArenaPrompt:
    return ArenaPrompt("typed:" + hashlib.sha256(text.encode()).hexdigest()[:12], [{"role": "user", "content": text}])


def swapped(key: str, annotator: str) -> bool:
    """Whether the second model is shown as A for this prompt and annotator."""
    return hashlib.sha256(f"{key}\0{annotator}".encode()).digest()[0] % 2 == 1


class Arena:
    """Two named backends, the prompts, the answers generated so far and the log."""

    def __init__(self, backends: dict[str, Any], prompts: list[ArenaPrompt], log: ReviewLog, *,
                 params: dict | None = None):
        if len(backends) != 2:
            raise ConfigError(f"the arena compares two models, got {len(backends)}: {', '.join(backends)}")
        self.names = list(backends)
        self.backends, self.log = backends, log
        self.prompts = {p.key: p for p in prompts}
        self.order = [p.key for p in prompts]
        self.params = {"temperature": 0.0, "max_tokens": 256, **(params or {})}
        self.answers: dict[str, list[str]] = {}  # key -> answers in self.names order
        self.generating = threading.Lock()  # one generation at a time: the models share the CPU

    def answers_for(self, prompt: ArenaPrompt) -> list[str]:
        with self.generating:
            if prompt.key not in self.answers:
                texts = []
                for name in self.names:
                    generation = self.backends[name].generate([GenerationRequest(prompt.messages, self.params)])[0]
                    if generation.error:
                        raise HTTPException(502, f"model {'A' if len(texts) == 0 else 'B'} failed to answer: "
                                                 f"{generation.error}")
                    texts.append(generation.text.strip())
                self.answers[prompt.key] = texts
            return self.answers[prompt.key]

    def prefetch(self, annotator: str, after: str) -> None:
        """Generate the annotator's next answers in the background while they read and vote (on a CPU a pair
        of answers can take minutes); a failure there is reported when that prompt is asked for."""
        upcoming = self.next_prompt(annotator, after)
        if upcoming is None or upcoming.key == after or upcoming.key in self.answers:
            return

        def work() -> None:
            with contextlib.suppress(HTTPException):
                self.answers_for(upcoming)

        threading.Thread(target=work, daemon=True, name="arena-prefetch").start()

    def shown(self, key: str, annotator: str) -> list[int]:
        """Indexes into ``self.names`` of the models shown as A and B."""
        return [1, 0] if swapped(key, annotator) else [0, 1]

    def item(self, prompt: ArenaPrompt, annotator: str) -> dict:
        """What the page may see before the vote: the prompt and the answers as A and B, no names."""
        answers = self.answers_for(prompt)
        with self.log.lock:
            voted = sum(1 for per_key in self.log.votes.values() if annotator in per_key)
        return {"key": prompt.key, "prompt": prompt.messages,
                "answers": [answers[i] for i in self.shown(prompt.key, annotator)],
                "position": self.order.index(prompt.key) + 1 if prompt.key in self.order else None,
                "total": len(self.order), "voted": voted}

    def next_prompt(self, annotator: str, after: str = "") -> ArenaPrompt | None:
        """The first prompt after ``after`` (wrapping around) that ``annotator`` has not voted on."""
        start = self.order.index(after) + 1 if after in self.order else 0
        with self.log.lock:
            for key in self.order[start:] + self.order[:start]:
                if annotator not in self.log.votes.get(key, {}):
                    return self.prompts[key]
        return None

    def vote(self, key: str, annotator: str, choice: str, note: str) -> dict:
        prompt = self.prompts.get(key)
        if prompt is None or key not in self.answers:
            raise HTTPException(404, f"no prompt {key!r} was shown by this server; reload the page")
        shown = self.shown(key, annotator)
        event = self.log.vote(key, annotator, models=[self.names[i] for i in shown], choice=choice,
                              prompt=prompt.messages, answers=[self.answers[key][i] for i in shown], note=note)
        return {"seq": event["seq"], "time": event["time"], "choice": choice, "models": event["models"]}


def arena_report(log: ReviewLog) -> dict:
    """Per pair of models: votes, each model's win rate with a Wilson 95% interval, ties and both bad; and the
    agreement (percent, Cohen's kappa) of every two annotators over the prompts both voted on."""
    by_pair: dict[tuple[str, str], list[dict]] = {}
    for per_key in log.votes.values():
        for event in per_key.values():
            by_pair.setdefault(tuple(sorted(event["models"])), []).append(event)
    pairs = []
    for models, events in sorted(by_pair.items()):
        outcomes = Counter(e["winner"] for e in events)
        n = len(events)
        rows = []
        for model in models:
            low, high = wilson_interval(outcomes[model], n)
            rows.append({"model": model, "wins": outcomes[model], "win_rate": round(outcomes[model] / n, 4),
                         "win_rate_95": [round(low, 4), round(high, 4)]})
        decisive = outcomes[models[0]] + outcomes[models[1]]
        low, high = wilson_interval(outcomes[models[0]], decisive)
        preferred = {"n": decisive, "rate": round(outcomes[models[0]] / decisive, 4) if decisive else None,
                     "rate_95": [round(low, 4), round(high, 4)]}
        pairs.append({"models": list(models), "votes": n, "annotators": len({e["annotator"] for e in events}),
                      "results": rows, "ties": outcomes["tie"], "both_bad": outcomes["both_bad"],
                      "first_preferred_when_decided": preferred})
    agreement = []
    voters = sorted({a for per_key in log.votes.values() for a in per_key})
    for a, b in combinations(voters, 2):
        both = [per_key for per_key in log.votes.values() if a in per_key and b in per_key]
        agreement.append({"annotators": [a, b], **pair_agreement([v[a]["winner"] for v in both],
                                                                 [v[b]["winner"] for v in both])})
    return {"log": str(log.path), "votes": sum(p["votes"] for p in pairs), "pairs": pairs, "agreement": agreement,
            "skipped_lines": log.skipped_lines}


def report_text(report: dict) -> str:
    """``oid arena report`` as plain text."""
    lines = [f"{report['votes']} votes in {report['log']}" + (f" ({report['skipped_lines']} unreadable line(s) "
                                                              "skipped)" if report["skipped_lines"] else "")]
    for pair in report["pairs"]:
        lines.append(f"\n{pair['models'][0]} vs {pair['models'][1]}: {pair['votes']} votes by "
                     f"{pair['annotators']} annotator(s)")
        for row in pair["results"]:
            low, high = row["win_rate_95"]
            lines.append(f"  {row['model']}: wins {row['wins']} ({100 * row['win_rate']:.1f}%, 95% CI "
                         f"{100 * low:.1f}-{100 * high:.1f}%)")
        lines.append(f"  tie {pair['ties']}, both bad {pair['both_bad']}")
        preferred = pair["first_preferred_when_decided"]
        if preferred["n"]:
            low, high = preferred["rate_95"]
            lines.append(f"  of {preferred['n']} decided votes, {pair['models'][0]} preferred in "
                         f"{100 * preferred['rate']:.1f}% (95% CI {100 * low:.1f}-{100 * high:.1f}%)")
    for row in report["agreement"]:
        a, b = row["annotators"]
        if row["n"]:
            lines.append(f"\nagreement {a} / {b} on {row['n']} shared prompts: {100 * row['percent']:.1f}%, "
                         f"Cohen's kappa {row['kappa']:.3f}")
        else:
            lines.append(f"\nagreement {a} / {b}: no prompt voted on by both")
    return "\n".join(lines)


class Vote(BaseModel):
    key: str
    annotator: str = Field(min_length=1)
    choice: str
    note: str = Field("", max_length=2000)


class Typed(BaseModel):
    annotator: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)


def create_arena_app(arena: Arena, *, annotator: str | None = None, host: str = "127.0.0.1",
                     token: str | None = None) -> FastAPI:
    """The arena page and its JSON API; answers come without model names until the vote. The review app's
    guard applies: only this server's host names, writes only from its own page, ``token`` when given."""
    app = FastAPI(title="oid arena", docs_url=None, redoc_url=None, openapi_url=None)
    add_guard(app, host, token)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "arena.html")

    mount_static(app, STATIC)

    @app.get("/api/meta")
    def meta() -> dict:
        return {"annotator": annotator, "prompts": len(arena.order), "log": str(arena.log.path),
                "votes": len([e for per_key in arena.log.votes.values() for e in per_key.values()])}

    @app.get("/api/next")
    def next_item(annotator: str, after: str = "") -> dict:
        prompt = arena.next_prompt(annotator, after)
        if prompt is None:
            return {"done": True, "total": len(arena.order)}
        item = arena.item(prompt, annotator)
        arena.prefetch(annotator, prompt.key)
        return item

    @app.post("/api/prompt")
    def typed(body: Typed) -> dict:
        prompt = typed_prompt(body.text)
        arena.prompts.setdefault(prompt.key, prompt)
        return arena.item(prompt, body.annotator)

    @app.post("/api/vote")
    def vote(body: Vote) -> dict:
        if body.choice not in VOTES:
            raise HTTPException(422, f"choice must be one of {', '.join(VOTES)}, got {body.choice!r}")
        return arena.vote(body.key, body.annotator, body.choice, body.note)

    @app.get("/api/results")
    def results() -> dict:
        with arena.log.lock:
            return arena_report(arena.log)

    return app


def default_arena_log(prompts: str | None) -> Path:
    """``held_out.jsonl`` -> ``held_out.arena.jsonl`` beside it; ``arena.jsonl`` without a prompt file."""
    if not prompts:
        return Path("arena.jsonl")
    path = Path(prompts)
    return path.with_name(path.name.split(".")[0] + ".arena.jsonl")


def serve_arena(model_a: str, model_b: str, *, prompts: str | None = None, limit: int | None = None,
                log_path: str | None = None, annotator: str | None = None, host: str = "127.0.0.1",
                port: int = 8766, token: str | None = None, max_tokens: int = 256, temperature: float = 0.0,
                endpoint_a: str | None = None, endpoint_b: str | None = None) -> None:
    """Load both models, then serve the arena page until interrupted."""
    import uvicorn

    from oidkit.models.backends import make_backend

    if model_a == model_b and endpoint_a == endpoint_b:
        raise ConfigError(f"both models are {model_a!r}: give two different models (e.g. base and tuned)")
    names = [model_a, model_b] if model_a != model_b else [f"{model_a} at {endpoint_a or 'local'}",
                                                           f"{model_b} at {endpoint_b or 'local'}"]
    if host not in LOCAL_HOSTS and not token:
        raise ConfigError(f"--host {host} makes the arena reachable from other machines: give --token SECRET "
                          "(every request without it gets 401), or keep the default --host 127.0.0.1")
    loaded = load_prompts(prompts, limit=limit) if prompts else []
    backends = {names[0]: make_backend(model_a, endpoint_a), names[1]: make_backend(model_b, endpoint_b)}
    log = ReviewLog(log_path or default_arena_log(prompts))
    arena = Arena(backends, loaded, log, params={"max_tokens": max_tokens, "temperature": temperature})
    print(f"arena: {len(loaded):,} prompts; log {log.path} ({len(arena_report(log)['pairs'])} model pair(s) voted "
          f"so far)")
    suffix = f"/?token={token}" if token else "/"
    print(f"open http://{'localhost' if host in LOCAL_HOSTS else host}:{port}{suffix}  (Ctrl+C to stop)", flush=True)
    try:
        uvicorn.run(create_arena_app(arena, annotator=annotator, host=host, token=token), host=host, port=port,
                    log_level="warning")
    finally:
        log.close()

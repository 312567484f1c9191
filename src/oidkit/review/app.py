"""The review web app: a JSON API over the index and the log, and the static page that drives it.

The page (``static/``) is plain HTML, JS and CSS served from here: no build step, nothing fetched from
elsewhere, and a Content-Security-Policy that forbids inline scripts, so record text that slipped past the
page's escaping still could not run. Writes are refused with 422 when the edit would break the
conversation (:func:`oidkit.records.conversation_problems`) and 409 when it was made on a stale version.
"""

from __future__ import annotations

import hmac
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from oidkit.core.web import SECURITY_HEADERS, mount_static
from oidkit.errors import ConfigError
from oidkit.records import conversation_problems
from oidkit.review.agreement import agreement, progress
from oidkit.review.index import Index, Query, load_items
from oidkit.review.log import EditConflict, ReviewLog, default_log_path

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "oid_review_token"
TOKEN_HEADER = "x-review-token"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ALL_INTERFACES = ("0.0.0.0", "::", "")
MAX_PAGE = 200


class Decision(BaseModel):
    key: str
    annotator: str = Field(min_length=1)
    decision: str | None
    reason: str = ""


class Labels(BaseModel):
    key: str
    annotator: str = Field(min_length=1)
    labels: list[str]


class Edit(BaseModel):
    key: str
    annotator: str = Field(min_length=1)
    base: int
    messages: list[dict[str, Any]]


def load_labels(spec: str | None) -> list[str]:
    """The label set: ``a,b,c`` or a YAML file holding a list or ``{labels: [...]}``."""
    if not spec:
        return []
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{spec}: label file not found; give a YAML list or --labels a,b,c")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        labels = loaded.get("labels") if isinstance(loaded, dict) else loaded
        if not isinstance(labels, list) or not all(isinstance(x, str | int) for x in labels):
            raise ConfigError(f"{spec}: expected a YAML list of labels or a mapping with `labels:` list, "
                              f"found {type(labels).__name__}")
        return [str(x) for x in labels]
    return [x.strip() for x in spec.split(",") if x.strip()]


def host_name(authority: str) -> str:
    """The host of a ``Host`` header or an origin's authority, lower-case, without port or IPv6 brackets."""
    try:
        return urlsplit(f"//{authority}").hostname or ""
    except ValueError:  # e.g. a port that is not a number
        return ""


def refusal(request: Request, host: str, token: str | None) -> str | None:
    """Why ``request`` is refused before anything reads or writes, or None.

    DNS rebinding lets a web page talk to this loopback server under its own host name, so only the names the
    server is bound to are answered; and a write must come from this app's own page (its ``Origin``), so no
    other site can make a browser post decisions. Bound to every interface (0.0.0.0, ::) a token is required
    and is the guard: the names that reach the machine are not known."""
    if host not in ALL_INTERFACES:
        allowed = {*LOCAL_HOSTS, host_name(host) or host.lower()}
        if host_name(request.headers.get("host", "")) not in allowed:
            return (f"host {request.headers.get('host')!r} is not this server's: open it as http://127.0.0.1 "
                    "or http://localhost (or the --host it was started with)")
    if request.method not in ("GET", "HEAD"):
        origin = request.headers.get("origin")
        if origin is None and token:  # a script with the token; browsers always send Origin on a POST
            return None
        if origin is None or urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
            return (f"writes are accepted from this app's own page only, and Origin {origin!r} is not it; "
                    f"scripts send the header Origin: http://{request.headers.get('host')}")
    return None


def add_guard(app: FastAPI, host: str, token: str | None) -> None:
    """Host and Origin checks (403), the token (401) and the security headers on every answer."""

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if (reason := refusal(request, host, token)) is not None:
            return JSONResponse({"detail": reason}, status_code=403)
        from_query = request.query_params.get("token")
        if token:
            given = request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE) or from_query or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "missing or wrong token: open the URL with ?token=... once, "
                                               f"or send the {TOKEN_HEADER} header"}, status_code=401)
        response = await call_next(request)
        if token and from_query:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers.update(SECURITY_HEADERS)
        return response


def decided_keys(log: ReviewLog, annotator: str, decisions: tuple[str, ...]) -> set[str]:
    return {k for k, by_annotator in log.decisions.items()
            if by_annotator.get(annotator, {}).get("decision") in decisions}


def status_keys(log: ReviewLog, status: str, annotator: str) -> set[str]:
    """Keys the annotator accepted or rejected, or that anyone edited."""
    if status == "edited":
        return set(log.edits)
    wanted = {"accepted": "accept", "rejected": "reject"}.get(status)
    if wanted is None:
        raise HTTPException(422, f"status must be unreviewed, accepted, rejected or edited, got {status!r}")
    return decided_keys(log, annotator, (wanted,))


def chosen_keys(log: ReviewLog, label: str, status: str, annotator: str) -> tuple[set[str] | None, set[str] | None]:
    """The keys a list is limited to and the keys it leaves out (None: no limit), from the label and status
    filters."""
    only_keys = except_keys = None
    with log.lock:  # request threads iterate the state while others append to it
        if label:
            only_keys = {k for k, by_annotator in log.labels.items() if any(label in v for v in by_annotator.values())}
        if status == "unreviewed":
            except_keys = decided_keys(log, annotator, ("accept", "reject"))
        elif status:
            chosen = status_keys(log, status, annotator)
            only_keys = chosen if only_keys is None else only_keys & chosen
    return only_keys, except_keys


def item_or_404(index: Index, key: str) -> Any:
    if key not in index.by_key:
        raise HTTPException(404, f"no record with key {key!r}")
    return index.items[index.by_key[key]]


def item_body(index: Index, log: ReviewLog, key: str) -> dict:
    """One item as the page opens it: the record as edited (and the original), its log state, and for a
    duplicate the record it duplicates."""
    found = item_or_404(index, key)
    record = found.record
    with log.lock:
        body: dict[str, Any] = {"key": key, "kind": found.kind, "version": log.version(key),
                                "reject": found.reject, "labels": dict(log.labels.get(key, {})),
                                "decisions": dict(log.decisions.get(key, {}))}
    if record is not None:
        body["record"] = {**record, "messages": log.edits[key]["messages"]} if key in log.edits else record
        if key in log.edits:
            body["original_messages"] = record["messages"]
            body["edited_by"] = log.edits[key]["annotator"]
    duplicate = index.duplicate_of(found) if found.reject else None
    if duplicate:
        kept = index.items[index.by_key[duplicate]].record
        body["duplicate"] = {"key": duplicate, "record": {**kept, "messages": log.edits[duplicate]["messages"]}
                             if duplicate in log.edits else kept}
    return body


def add_read_routes(app: FastAPI, index: Index, log: ReviewLog, labels: list[str], annotator: str | None) -> None:
    """The page, its static files, and the JSON the page reads: meta, record lists, one item, progress."""

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    mount_static(app, STATIC)

    @app.get("/api/meta")
    def meta() -> dict:
        return {"annotator": annotator, "labels": labels, "log": str(log.path),
                "counts": {"data": int((~index.is_reject).sum()), "reject": int(index.is_reject.sum())},
                "sample": index.sample_size, "sources": index.sources,
                "operators": [o for o in index.operators if o], "reasons": [r for r in index.reasons if r],
                "languages": index.langs if index.languages_done.is_set() else None}

    @app.get("/api/records")
    def records(view: str = "data", q: str = "", source: str = "", lang: str = "", operator: str = "",
                reason: str = "", min_turns: int | None = None, max_turns: int | None = None,
                min_chars: int | None = None, max_chars: int | None = None, min_score: float | None = None,
                max_score: float | None = None, label: str = "", status: str = "", annotator: str = "",
                sample: bool = False, offset: int = 0, limit: int = 50) -> dict:
        only_keys, except_keys = chosen_keys(log, label, status, annotator)
        query = Query(view=view, q=q, source=source or None, lang=lang or None, operator=operator or None,
                      reason=reason or None, min_turns=min_turns, max_turns=max_turns, min_chars=min_chars,
                      max_chars=max_chars, min_score=min_score, max_score=max_score, only_keys=only_keys,
                      except_keys=except_keys, sample_only=sample)
        positions = index.select(query)
        limit, offset = max(1, min(limit, MAX_PAGE)), max(0, offset)
        rows = [index.preview(int(p)) for p in positions[offset:offset + limit]]
        for row in rows:
            row["status"] = (log.decisions.get(row["key"], {}).get(annotator) or {}).get("decision")
            row["labels"] = log.labels.get(row["key"], {}).get(annotator, [])
            row["edited"] = row["key"] in log.edits
        return {"total": len(positions), "offset": offset, "items": rows}

    @app.get("/api/item")
    def item(key: str) -> dict:
        return item_body(index, log, key)

    @app.get("/api/progress")
    def progress_view(sample: bool = False) -> dict:
        keys = [item.key for i, item in enumerate(index.items) if not sample or index.in_sample[i]]
        with log.lock:
            return {"progress": progress(log, keys), "agreement": agreement(log, labels)}


def add_write_routes(app: FastAPI, index: Index, log: ReviewLog, labels: list[str]) -> None:
    """Decisions, labels and edits, each checked before it is appended to the log."""

    @app.post("/api/decision")
    def decide(body: Decision) -> dict:
        item_or_404(index, body.key)
        if body.decision not in ("accept", "reject", None):
            raise HTTPException(422, f"decision must be accept, reject or null, got {body.decision!r}")
        return log.decide(body.key, body.annotator, body.decision, body.reason)

    @app.post("/api/labels")
    def set_labels(body: Labels) -> dict:
        item_or_404(index, body.key)
        unknown = sorted(set(body.labels) - set(labels))
        if labels and unknown:
            raise HTTPException(422, f"labels {unknown} are not in the label set {labels}")
        return log.set_labels(body.key, body.annotator, body.labels)

    @app.post("/api/edit")
    def edit(body: Edit):
        found = item_or_404(index, body.key)
        if found.record is None:
            raise HTTPException(422, "this reject is a raw source row, not a conversation: it cannot be edited")
        problems = conversation_problems(body.messages)
        if problems:
            raise HTTPException(422, "the edit would break the conversation: "
                                + "; ".join(f"{code} ({detail})" if detail else code for code, detail in problems))
        try:
            return log.edit(body.key, body.annotator, body.base, body.messages)
        except EditConflict as conflict:
            current = conflict.current
            return JSONResponse(status_code=409, content={
                "detail": f"{current['annotator']} saved this record (version {current['seq']}) after you opened it",
                "current": {"version": current["seq"], "annotator": current["annotator"], "time": current["time"],
                            "messages": current["messages"]},
                "yours": {"base": body.base, "messages": body.messages}})


def create_app(index: Index, log: ReviewLog, *, labels: list[str], annotator: str | None = None,
               token: str | None = None, host: str = "127.0.0.1") -> FastAPI:
    """The FastAPI app over one index and one log, answering requests addressed to ``host`` (or loopback)."""
    app = FastAPI(title="oid review", docs_url=None, redoc_url=None, openapi_url=None)
    add_guard(app, host, token)
    add_read_routes(app, index, log, labels, annotator)
    add_write_routes(app, index, log, labels)
    return app


def build(data: str, *, rejects: str | None = None, log_path: str | None = None, sample: int | None = None,
          seed: int = 0, salvage: bool = False, identify_languages: bool = True,
          on_unreadable: Callable[[dict], None] | None = None) -> tuple[Index, ReviewLog]:
    """Load the items and replay the log; language identification goes on in a background thread."""
    index = Index(load_items(data, rejects, salvage=salvage, on_unreadable=on_unreadable), sample_size=sample,
                  seed=seed, identify=identify_languages)
    threading.Thread(target=index.index_languages, daemon=True, name="languages").start()
    return index, ReviewLog(log_path or default_log_path(data))


def serve(data: str, *, rejects: str | None = None, log_path: str | None = None, host: str = "127.0.0.1",
          port: int = 8765, token: str | None = None, labels: str | None = None, annotator: str | None = None,
          sample: int | None = None, seed: int = 0, salvage: bool = False) -> None:
    """Start the review app and serve until interrupted."""
    import uvicorn

    if host not in LOCAL_HOSTS and not token:
        raise ConfigError(f"--host {host} makes the review app reachable from other machines: give --token SECRET "
                          "(every request without it gets 401), or keep the default --host 127.0.0.1")
    label_set = load_labels(labels)
    unreadable: Counter[str] = Counter()
    index, log = build(data, rejects=rejects, log_path=log_path, sample=sample, seed=seed, salvage=salvage,
                       on_unreadable=lambda reject: unreadable.update([reject["reason"]]))
    app = create_app(index, log, labels=label_set, annotator=annotator, token=token, host=host)
    suffix = f"/?token={token}" if token else "/"
    print(f"reviewing {len(index.items):,} items; log {log.path} ({log.seq} decisions so far)")
    if unreadable:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in unreadable.most_common())
        print(f"{unreadable.total():,} rows of {data} are not valid records and are not shown ({reasons}); "
              "`oid convert` writes them to a rejects file that --rejects can review")
    print(f"open http://{'localhost' if host in LOCAL_HOSTS else host}:{port}{suffix}  (Ctrl+C to stop)", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        log.close()

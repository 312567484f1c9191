"""The chat page ``oid serve`` shows at ``/``: a conversation with the served model in the browser.

Plain HTML, JS and CSS from ``static/`` (no build step, nothing fetched from elsewhere, so it works
offline), talking to the server's own ``/v1/chat/completions`` with streaming. Model text is rendered by
the review app's escape-first Markdown (``review/static/shared.js``, served here too, not copied) under the
same strict Content-Security-Policy, so an answer containing ``<script>`` shows as text and cannot run.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from oidkit.core.web import SECURITY_HEADERS

STATIC = Path(__file__).parent / "static"
# The review app's page helpers and look, reused by the chat page as files (stages never import each other).
REVIEW_STATIC = Path(str(files("oidkit.review") / "static"))
SHARED_FILES = ("shared.js", "style.css")


def add_chat_page(app: FastAPI) -> None:
    """Serve the chat page at ``/`` and its files under ``/static`` on ``app``; the API is unchanged."""

    @app.middleware("http")
    async def page_headers(request: Request, call_next):
        response = await call_next(request)
        if not request.url.path.startswith("/v1/"):
            response.headers.update(SECURITY_HEADERS)
        return response

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "chat.html")

    for name in SHARED_FILES:
        app.add_api_route(f"/static/{name}", lambda name=name: FileResponse(REVIEW_STATIC / name),
                          include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="chat-static")

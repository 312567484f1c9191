"""The chat page ``oid serve`` shows at ``/``: a conversation with the served model in the browser.

Plain HTML, JS and CSS from ``static/`` and the pages' shared files (``oidkit/core/static``: the escape-first
Markdown renderer the review app uses too), with nothing fetched from elsewhere, so it works offline. It talks
to the server's own ``/v1/chat/completions`` with streaming. The page's answers carry the strict
Content-Security-Policy of every oidkit page, so model text containing ``<script>`` shows as text and cannot run.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse

from oidkit.core.web import SECURITY_HEADERS, mount_static

STATIC = Path(__file__).parent / "static"


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

    mount_static(app, STATIC)

"""What every oidkit web page shares: the security headers, and the files each page loads first.

The pages (review, arena, the chat page of ``oid serve``) are plain HTML, JS and CSS served by their app:
no build step, nothing fetched from elsewhere (they work offline), and a Content-Security-Policy that forbids
inline scripts and other origins, so text that slipped past a page's escaping still cannot run. ``static/``
here holds what they share: ``shared.js`` (DOM building, the escape-first Markdown renderer, JSON calls) and
``style.css`` (the look).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

SHARED_STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def file_route(path: Path):
    async def send_file() -> FileResponse:
        return FileResponse(path)

    return send_file


def mount_static(app: FastAPI, folder: Path) -> None:
    """Serve ``/static/NAME``: the shared files, then the page's own ``folder``."""
    for path in sorted(SHARED_STATIC.iterdir()):
        app.add_api_route(f"/static/{path.name}", file_route(path), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=folder), name="static")

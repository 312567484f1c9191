"""What every oidkit web page shares: the security headers its responses carry.

The pages (review, arena, the chat page of ``oid serve``) are plain HTML, JS and CSS served by the app
itself: no build step, nothing fetched from elsewhere (they work offline), and a Content-Security-Policy
that forbids inline scripts and other origins, so text that slipped past a page's escaping still cannot run.
"""

from __future__ import annotations

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

"""GET /dashboard: the task dashboard, a static page whose HTML, script and style (result/static/) are packaged with
this function. It holds no data: in the browser it calls the API itself, with the user's own bearer token (when the
API wants one), so its routes take no authorizer, unlike every other route.

Served with a Content-Security-Policy that allows nothing but the API's own origin: no inline script or style, no other
host, no framing.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from core.http.api import Request, response

STATIC = Path(__file__).resolve().parent / "static"
DASHBOARD_ROUTE = "/dashboard"
# Each file its own literal route: a literal path is the most specific match, so none of them reaches /{task}/{task_id}.
ASSETS = {
    "/dashboard/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/dashboard/app.css": ("app.css", "text/css; charset=utf-8"),
}
ASSET_ROUTES = tuple(ASSETS)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Fetched again on each visit, so that a page never runs beside a script of another version.
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=4)
def _read(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def serve_page(request: Request) -> dict[str, Any]:
    return response(200, _read("index.html"), "text/html; charset=utf-8", HEADERS)


def serve_asset(request: Request) -> dict[str, Any]:
    name, content_type = ASSETS[request.route]
    return response(200, _read(name), content_type, HEADERS)

"""The dashboard's web app: one static page, its assets, and a read-only JSON API.

Every route is a GET. Path parameters are integers (a run's index among the stores
given, a member's id), query parameters are checked and bounded, and the static files
are a fixed list looked up by name: nothing reads a file the server was not built to
serve. The page puts every string it is given into the document as text, never as
markup, and its Content Security Policy loads scripts from this server alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from populace.dashboard.data import Source, finite
from populace.store import Kind, StoreError

# the files the page loads, by the name it asks for, and their media types
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "plotly-basic.min.js": "text/javascript; charset=utf-8",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
LIMITS = {"points": (100, 200_000), "limit": (1, 5000)}


def _asset(name: str) -> bytes:
    return resources.files("populace.dashboard").joinpath("static").joinpath(name).read_bytes()


class Json(JSONResponse):
    """JSON without NaN or Infinity (None instead), which JSON does not have."""

    def render(self, content: Any) -> bytes:
        try:  # most answers hold no NaN: encoded as they are, not walked first
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()
        except ValueError:
            return json.dumps(finite(content), allow_nan=False, separators=(",", ":")).encode()


def _int(request: Request, name: str, default: int | None = None, low: int = 0,
         high: int = 2**62) -> int | None:
    """Query parameter `name` as an int in [low, high]; 400 for anything else."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise HTTPException(400, f"{name} must be an integer from {low} to {high}")
    return int(text)


def _float(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise HTTPException(400, f"{name} must be a number") from None
    if not 0 <= value < 1e12:
        raise HTTPException(400, f"{name} must be a time in seconds since 1970")
    return value


def _kinds(request: Request) -> tuple[str, ...]:
    words = [w for w in request.query_params.get("kind", "").split(",") if w]
    known = {str(k) for k in Kind}
    unknown = [w for w in words if w not in known]
    if unknown:
        raise HTTPException(400, f"kind must be among {', '.join(sorted(known))}")
    return tuple(words)


def page(request: Request) -> Response:
    return Response(_asset("index.html"), media_type="text/html; charset=utf-8",
                    headers=HEADERS)


def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        raise HTTPException(404, "no such file")
    return Response(_asset(name), media_type=ASSETS[name],
                    headers={**HEADERS, "Cache-Control": "max-age=3600"})


def failed(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StoreError):  # the store went away, or was replaced mid-read
        return Json({"error": str(exc)}, status_code=503)
    assert isinstance(exc, HTTPException)
    return Json({"error": exc.detail}, status_code=exc.status_code)


def no_icon(request: Request) -> Response:
    return Response(status_code=204)


def create_app(sources: Sequence[Source], poll_seconds: float = 2.0,
               allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The app over `sources`; `allowed_hosts`: refuse requests whose Host header names
    another host (a page elsewhere that rebinds its name to 127.0.0.1 cannot read)."""

    def source(request: Request) -> Source:
        index = request.path_params["run"]
        if index >= len(sources):
            raise HTTPException(404, f"no run {index}: the dashboard shows runs 0 to "
                                     f"{len(sources) - 1}")
        return sources[index]

    def runs(request: Request) -> Response:
        return Json({"runs": [s.summary() for s in sources], "poll": poll_seconds})

    def overview(request: Request) -> Response:
        return Json(source(request).overview())

    def poll(request: Request) -> Response:
        return Json(source(request).poll(_int(request, "results", 0) or 0,
                                         _int(request, "events", 0) or 0,
                                         _float(request, "since")))

    def series(request: Request) -> Response:
        low, high = LIMITS["points"]
        return Json(source(request).series(_int(request, "points", 20_000, low, high) or low))

    def events(request: Request) -> Response:
        low, high = LIMITS["limit"]
        return Json(source(request).events(_kinds(request), _int(request, "member"),
                                           _int(request, "limit", 200, low, high) or low))

    def lineage(request: Request) -> Response:
        try:
            return Json(source(request).lineage(request.path_params["member"]))
        except LookupError as e:
            raise HTTPException(404, str(e).strip("'\"")) from None

    def curve(request: Request) -> Response:
        return Json(source(request).curve())

    def front(request: Request) -> Response:
        return Json(source(request).front(_int(request, "step")))

    def strategy(request: Request) -> Response:
        return Json(source(request).strategy_state())

    api: list[tuple[str, Callable[[Request], Response]]] = [
        ("/api/runs", runs), ("/api/runs/{run:int}/overview", overview),
        ("/api/runs/{run:int}/poll", poll), ("/api/runs/{run:int}/series", series),
        ("/api/runs/{run:int}/events", events),
        ("/api/runs/{run:int}/lineage/{member:int}", lineage),
        ("/api/runs/{run:int}/curve", curve), ("/api/runs/{run:int}/front", front),
        ("/api/runs/{run:int}/strategy", strategy),
    ]
    routes = [Route("/", page), Route("/static/{name}", asset), Route("/favicon.ico", no_icon),
              *(Route(path, endpoint) for path, endpoint in api)]
    middleware = [Middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)]
    if allowed_hosts is not None:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={HTTPException: failed, StoreError: failed})

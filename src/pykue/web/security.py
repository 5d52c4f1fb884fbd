"""What the dashboard and the JSON API protect, shared by both apps.

- token: every request carries it (Bearer header, or the cookie set by `?token=` once).
- read-only: no route changes anything; write routes declare `WRITE`, and every unsafe
  method is refused too, so a route that forgets it still cannot write through POST/PUT/DELETE.
- cross-site: a write from a browser must come from the same origin (Sec-Fetch-Site, else
  Origin), or carry the token in its Authorization header, which no cross-site page can set.
  A request with neither header is not a browser's cross-site request (curl, Kue clients).
- Host: only names the server answers to (loopback by default), against DNS rebinding.
- every answer carries a Content-Security-Policy, X-Frame-Options: DENY and nosniff;
  every error is JSON, and a Redis outage is a 503 without a traceback, also when Redis
  hangs rather than refuses (no answer within `timeout` seconds).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException

from pykue._errors import PykueError

log = logging.getLogger("pykue.web")

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_COOKIE = "pykue_token"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True)
class Guard:
    """One app's protections. `hosts` None accepts any Host (a token then guards the app)."""

    token: str | None = None
    read_only: bool = False
    hosts: frozenset[str] | None = LOOPBACK
    name: str = "API"
    timeout: float = 10.0


def exposure_error(host: str, token: str | None, insecure: bool) -> str | None:
    """Why binding to `host` is refused (None when it is fine): beyond loopback, a token or --insecure."""
    if host in LOOPBACK or token or insecure:
        return None
    return f"binding to {host} exposes the queue: give --token (or --insecure to accept that)"


def hosts_for(bind: str, token: str | None = None) -> frozenset[str] | None:
    """The Host names a server bound to `bind` answers to. None (any) with a token, which a
    rebinding page cannot send, or for a wildcard bind, which only starts with a token or --insecure."""
    if token or bind in WILDCARD:
        return None
    return LOOPBACK | {bind}


def host_name(host_header: str) -> str:
    """ "[::1]:3000" -> "::1", "Example.com:80" -> "example.com"."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")].lower()
    return host_header.rsplit(":", 1)[0].lower() if host_header.count(":") == 1 else host_header.lower()


def _bearer(request: Request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ").strip()


def _matches(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def cross_site(request: Request) -> bool:
    """A browser request from another origin (a different port on localhost counts)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def _refusal(request: Request, guard: Guard, writes: bool) -> JSONResponse | None:
    """The answer refusing this request, or None to let it through."""
    if guard.hosts is not None and host_name(request.headers.get("host", "")) not in guard.hosts:
        return error(f"Host {request.headers.get('host', '')!r} is not served here", 421)
    bearer_ok = guard.token is not None and _matches(_bearer(request), guard.token)
    if guard.token is not None and not bearer_ok:
        given = request.cookies.get(TOKEN_COOKIE, "") or request.query_params.get("token", "")
        if not _matches(given, guard.token):
            return error("a valid token is required", 401)
    if not writes:
        return None
    if guard.read_only:
        return error(f"the {guard.name} is read-only", 403)
    if cross_site(request) and not bearer_ok:
        return error("cross-site request refused: send it from this origin or with the token", 403)
    return None


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _write_check(request: Request) -> None:
    """The dependency every write route declares; the middleware only knows methods."""
    refusal = _refusal(request, request.app.state.guard, writes=True)
    if refusal is not None:
        raise _Refused(refusal)


WRITE = Depends(_write_check)


class _Refused(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Refused)
    return exc.response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error(f"invalid request: {exc.errors()}", 400)


async def _redis_down(request: Request, exc: Exception) -> Response:
    log.warning("pykue web: Redis unavailable (%s) answering %s %s", exc, request.method, request.url.path)
    return error(f"Redis unavailable: {exc}", 503)


async def _redis_error(request: Request, exc: Exception) -> Response:
    log.warning("pykue web: Redis error (%s) answering %s %s", exc, request.method, request.url.path)
    return error(f"Redis error: {exc}", 503 if "OOM" in str(exc) or "LOADING" in str(exc) else 500)


async def _bad_input(request: Request, exc: Exception) -> Response:
    return error(str(exc), 400)


async def _internal(request: Request, exc: Exception) -> Response:
    return error(f"internal error: {type(exc).__name__}", 500)


async def _answer(request: Request, call_next: Callable[[Request], Awaitable[Response]], timeout: float) -> Response:
    """The app's answer, or a 503 when it takes longer than `timeout` (a hung or paused Redis);
    a streamed answer (/events) counts only until its headers are sent."""
    try:
        return await asyncio.wait_for(call_next(request), timeout)
    except TimeoutError:
        log.warning("pykue web: no answer within %.1f s to %s %s", timeout, request.method, request.url.path)
        return error(f"Redis unavailable: no answer within {timeout:g} s", 503)


def protect(app: FastAPI, guard: Guard) -> None:
    """Install the guard, the security headers and JSON errors on `app`."""
    app.state.guard = guard
    for exc, handler in ((_Refused, _refused), (HTTPException, _http_error), (RequestValidationError, _invalid),
                         (RedisConnectionError, _redis_down), (RedisTimeoutError, _redis_down),
                         (ConnectionError, _redis_down), (RedisError, _redis_error), (PykueError, _bad_input),
                         (Exception, _internal)):  # fmt: skip
        app.add_exception_handler(exc, handler)

    @app.middleware("http")
    async def guard_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refusal = _refusal(request, guard, writes=request.method not in SAFE_METHODS)
        response = refusal if refusal is not None else await _answer(request, call_next, guard.timeout)
        if refusal is None and guard.token is not None and _matches(request.query_params.get("token", ""),
                                                                    guard.token):  # fmt: skip
            response.set_cookie(TOKEN_COOKIE, guard.token, httponly=True, samesite="strict")
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

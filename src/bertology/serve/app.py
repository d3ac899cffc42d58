"""The web application of `bertology serve`: a JSON API over `Explorer` and one static page.

Routes: `/` the page; `/static/*` its script and style; `GET /api/models`, `GET /api/examples?model=`;
`POST /api/senses | /api/fill-mask | /api/neighbours | /api/langvec | /api/attention`; `GET /api/font.css?chars=` (a subset of
Noto Sans CJK holding just those characters, so Chinese renders where the reader has no CJK font).

Errors are JSON `{"error": message, "field": input name or null}` (plus `"switch": model` when another model of
the picker can do what this one cannot): 400 for a bad input (shown next to that
input), 503 when the model queue is full, 413 for an oversized body, 500 for a bug (logged with its traceback;
the server keeps serving).
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..checks import check_text
from ..errors import UserError
from .explorer import Busy, Explorer, InputError

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 64 * 1024      # 64 sentences x 300 characters of CJK in UTF-8 is under 60 KB
MAX_FONT_CHARS = 4000
log = logging.getLogger("bertology.serve")


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only: localhost, all of 127.0.0.0/8 and ::1 (`--host 127.0.0.2` turned
    the Host check off while warning about exposure)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_warning(host: str) -> str | None:
    """The warning printed when the server listens beyond this machine (None on loopback)."""
    if is_loopback(host):
        return None
    return (f"warning: listening on {host}: anyone who can reach this machine can use the explorer and its "
            f"CPU (there is no authentication); use the default --host 127.0.0.1 unless you mean it")


# Request bodies (module level: FastAPI resolves the handlers' annotations here). Values are checked by
# Explorer, so the page gets the same messages whatever a client sends.
class SensesIn(BaseModel):
    model: str | None = None
    sentences: str = ""
    target: str = ""

class FillMaskIn(BaseModel):
    model: str | None = None
    text: str = ""
    k: Any = 5

class NeighboursIn(BaseModel):
    model: str | None = None
    word: str = ""
    k: Any = 5

class AttentionIn(BaseModel):
    model: str | None = None
    sentence: str = ""
    target: str = ""

class LangvecIn(BaseModel):
    model: str | None = None
    sentence: str = ""
    layer: Any = 0
    alpha: Any = 1.0


_font_lock = threading.Lock()


@lru_cache(maxsize=16)
def _font_css(chars: str) -> str:
    from ..report import embedded_cjk_font

    # Subsetting a 16 MB font takes about a second of CPU: one at a time, and cached per character set.
    with _font_lock:
        return embedded_cjk_font(chars)


def create_app(explorer: Explorer, host: str = "127.0.0.1"):
    """The explorer's web application; `host` is where it will listen (loopback turns on the Host check)."""
    from fastapi import FastAPI

    app = FastAPI(title="bertology explorer", docs_url=None, redoc_url=None, openapi_url=None)
    _add_guards(app, host)
    _add_error_handlers(app)
    _add_routes(app, explorer)
    return app


def _add_guards(app, host: str) -> None:
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    if is_loopback(host):
        # Bound to loopback: refuse other Host headers, so a web page the user visits cannot reach the
        # explorer through DNS rebinding. The address listened on is allowed too (127.0.0.2, say).
        allowed = {"127.0.0.1", "localhost", "::1", "[::1]", host, f"[{host.strip('[]')}]" if ":" in host else host}
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted(allowed))


class BodyLimit:
    """ASGI middleware: at most `max_bytes` of request body, counted on the bytes actually received. A
    Content-Length header is only a claim, and `Transfer-Encoding: chunked` has none: a 5 MB chunked body was
    read whole and answered 200. Over the limit: 413 with the error shape of every other refusal."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        claimed = headers.get(b"content-length", b"").decode("latin-1")
        if claimed.isdigit() and int(claimed) > self.max_bytes:
            return await _json_response(send, 413, self._message(int(claimed)))
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # an HTTPException: FastAPI's body reading passes it on (anything else becomes its 400)
                    from starlette.exceptions import HTTPException

                    raise HTTPException(413, self._message(received, more=True))
            return message

        await self.app(scope, counting_receive, send)

    def _message(self, size: int, more: bool = False) -> str:
        return f"request body of {size:,}{'+' if more else ''} bytes: at most {self.max_bytes:,}"


async def _json_response(send, status: int, error: str) -> None:
    import json

    body = json.dumps({"error": error, "field": None}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _add_error_handlers(app) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(UserError)
    async def bad_input(request: Request, exc: UserError):
        # The library names fields in backticks (`layer`); the page's inputs carry the same names, so a field
        # is said as its plain name and the input it names is outlined. A UserError without a field (a model
        # that fails to load, say) is shown without one.
        field = getattr(exc, "field", None) or next(iter(getattr(exc, "fields", ())), None)
        body = {"error": exc.describe(lambda name: name), "field": field}
        if getattr(exc, "switch", None):
            body["switch"] = exc.switch
        return JSONResponse(body, 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # One error shape for every 4xx: FastAPI's own refusals ({"detail": ...}) say it as {"error", "field"}.
        # Its "error parsing the body" is a JSON nested too deeply for the parser (RecursionError).
        cause = exc.__cause__
        message = ("malformed request: JSON nested too deeply" if isinstance(cause, RecursionError)
                   else str(exc.detail))
        return JSONResponse({"error": message, "field": None}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        return JSONResponse({"error": str(exc), "field": None}, 503, headers={"Retry-After": "2"})

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"error": f"malformed request: {where or 'body'}: {first.get('msg', 'invalid')}",
                             "field": where or None}, 400)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        log.exception("bug while serving %s", request.url.path)
        return JSONResponse({"error": f"internal error ({exc.__class__.__name__}); the server log has the "
                                      f"traceback", "field": None}, 500)


def _check_texts(body: BaseModel) -> None:
    """Every text field of a request is valid Unicode: JSON may carry a lone surrogate ("\\ud800"), which the
    tokenizer fails on with a TypeError (an HTTP 500); refused as 400 naming the field."""
    for name, value in body.model_dump().items():
        if isinstance(value, str):
            check_text(name, value)


def _add_routes(app, explorer: Explorer) -> None:
    from fastapi.responses import FileResponse, Response
    from fastapi.staticfiles import StaticFiles

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/models")
    def models():
        # every endpoint is behind the bounded queue (issue 27.6); this one answers from memory, without
        # waiting for the model, so the page draws itself while a model loads
        with explorer.queue.admitted():
            listed = explorer.model_list()
            return {"models": listed, "default": listed[0]["name"], "limits": explorer.limits.to_json()}

    @app.get("/api/examples")
    def examples(model: str | None = None):
        return explorer.examples(model)

    @app.post("/api/senses")
    def senses(body: SensesIn):
        _check_texts(body)
        return explorer.senses(body.model, body.sentences, body.target)

    @app.post("/api/fill-mask")
    def fill_mask(body: FillMaskIn):
        _check_texts(body)
        return explorer.fill_mask(body.model, body.text, body.k)

    @app.post("/api/neighbours")
    def neighbours(body: NeighboursIn):
        _check_texts(body)
        return explorer.neighbours(body.model, body.word, body.k)

    @app.post("/api/langvec")
    def langvec(body: LangvecIn):
        _check_texts(body)
        return explorer.langvec(body.model, body.sentence, body.layer, body.alpha)

    @app.post("/api/attention")
    def attention(body: AttentionIn):
        _check_texts(body)
        return explorer.attention(body.model, body.sentence, body.target)

    @app.get("/api/font.css")
    def font_css(chars: str = ""):
        wanted = "".join(sorted({c for c in chars if ord(c) > 0x2E7F}))
        if len(wanted) > MAX_FONT_CHARS:
            raise InputError(f"{len(wanted)} characters asked for: at most {MAX_FONT_CHARS}", "chars")
        with explorer.queue.turn():     # a second of CPU per new character set: bounded like a model call
            css = _font_css(wanted)
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=86400"})

"""The web application of `bertology serve`: a JSON API over `Explorer` and one static page.

Routes: `/` the page; `/static/*` its script and style; `GET /api/models`, `GET /api/examples?model=`;
`POST /api/senses | /api/fill-mask | /api/neighbours | /api/langvec`; `GET /api/font.css?chars=` (a subset of
Noto Sans CJK holding just those characters, so Chinese renders where the reader has no CJK font).

Errors are JSON `{"error": message, "field": input name or null}`: 400 for a bad input (shown next to that
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
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_BODY_BYTES = 64 * 1024      # 64 sentences x 300 characters of CJK in UTF-8 is under 60 KB
MAX_FONT_CHARS = 4000
log = logging.getLogger("bertology.serve")


def host_warning(host: str) -> str | None:
    """The warning printed when the server listens beyond this machine (None on loopback)."""
    if host in LOOPBACK_HOSTS:
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
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    if host in LOOPBACK_HOSTS:
        # Bound to loopback: refuse other Host headers, so a web page the user visits cannot reach the
        # explorer through DNS rebinding.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "::1", "[::1]"])

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        if request.method == "POST":
            size = request.headers.get("content-length")
            if size is None or not size.isdigit():
                return JSONResponse({"error": "a request body needs a Content-Length", "field": None}, 411)
            if int(size) > MAX_BODY_BYTES:
                return JSONResponse({"error": f"request body of {int(size):,} bytes: at most {MAX_BODY_BYTES:,}",
                                     "field": None}, 413)
        return await call_next(request)


def _add_error_handlers(app) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    @app.exception_handler(UserError)
    async def bad_input(request: Request, exc: UserError):
        # The library names fields in backticks (`layer`); the page's inputs carry the same names, so a field
        # is said as its plain name and the input it names is outlined. A UserError without a field (a model
        # that fails to load, say) is shown without one.
        field = getattr(exc, "field", None) or next(iter(getattr(exc, "fields", ())), None)
        return JSONResponse({"error": exc.describe(lambda name: name), "field": field}, 400)

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
        return {"models": explorer.model_list(), "default": explorer.model_list()[0]["name"],
                "limits": explorer.limits.to_json()}

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

    @app.get("/api/font.css")
    def font_css(chars: str = ""):
        wanted = "".join(sorted({c for c in chars if ord(c) > 0x2E7F}))
        if len(wanted) > MAX_FONT_CHARS:
            raise InputError(f"{len(wanted)} characters asked for: at most {MAX_FONT_CHARS}", "chars")
        return Response(_font_css(wanted), media_type="text/css", headers={"Cache-Control": "max-age=86400"})

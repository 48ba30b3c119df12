"""The web application: a Starlette app over the library, serving a static page and a small JSON API.

    GET  /                          the page (artfx/web/static: plain HTML, CSS and JavaScript, no build step)
    GET  /api/info                  stages and their fields, samples, built-in styles, devices, limits
    POST /api/uploads?name=a.jpg    the photo's bytes as the body -> {id, name, width, height, view}; 503 with
                                    Retry-After while other uploads hold the memory for decoding
    POST /api/samples/{name}        a built-in sample as an upload
    GET  /api/uploads/{id}/view     the upload as a PNG the browser can show
    GET  /api/styles/{name}         a built-in style's thumbnail
    POST /api/check                 {input, steps, options} -> the command and TOML, or errors by field
    POST /api/jobs                  {input, steps, options} -> {id, position}, or errors by field (400)
    GET  /api/jobs/{id}             the job's state; /events: the same, live, as server-sent events
    GET  /api/jobs/{id}/preview     the latest live image (PNG)
    POST /api/jobs/{id}/cancel      stop it (waiting: at once; running: at the stage's next progress report)
    GET  /api/jobs/{id}/files/{f}   the result (PNG with its recipe) and the side outputs asked for

Everything a session makes lives in one temporary folder, removed when the app stops. The browser names files
only by upload id; every POST must carry the ``X-Artfx`` header (a page on another site cannot send it without
the browser asking first, and this app never says yes), and the app may be told which Host names to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from artfx import __version__
from artfx.errors import ArtfxError, UsageError
from artfx.io import jsonlimits
from artfx.options import DEVICES, RunOptions
from artfx.web import forms
from artfx.web.jobs import FINISHED, make_job, new_id
from artfx.web.session import DECODE_WAIT, MAX_PIXELS, MAX_UPLOAD, Busy, Session, TooLarge, prepare_request

STATIC = Path(__file__).resolve().parent / "static"
SAMPLES = STATIC / "samples"
POLL = 0.15  # seconds between looks at a job for its event stream
MAX_JSON = 1 << 20  # longest JSON request (a form is a few KB)


# ---- helpers ---------------------------------------------------------------------------------------------------
def _error(message: str, status: int = 400, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    """The request's JSON object, read with limits on its size and nesting (a 400, never a RecursionError)."""
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_JSON:
            raise UsageError(f"the request is longer than {MAX_JSON >> 10} KB")
        chunks.append(chunk)
    try:
        body = jsonlimits.loads(b"".join(chunks), max_bytes=MAX_JSON)
    except jsonlimits.JSONLimitError as exc:
        raise UsageError(f"the request is {exc}") from None
    except ValueError:  # UnicodeDecodeError included
        raise UsageError("the request is not JSON") from None
    if not isinstance(body, dict):
        raise UsageError("the request must be a JSON object")
    return body


def _with_errors(handler: Any) -> Any:
    """One-line JSON errors for what goes wrong in a handler."""
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except forms.FormError as exc:
            return JSONResponse({"error": str(exc), "errors": exc.errors}, status_code=400)
        except Busy as exc:
            return JSONResponse({"error": str(exc), "retry_after": exc.retry_after}, status_code=503,
                                headers={"Retry-After": str(exc.retry_after)})
        except ArtfxError as exc:
            return _error(str(exc), 413 if isinstance(exc, TooLarge) else 400)
    return wrapped


# ---- routes ------------------------------------------------------------------------------------------------------
async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def info(request: Request) -> Response:
    session: Session = request.app.state.session

    def build() -> dict[str, Any]:
        from artfx.web.forms import describe_stages

        return {
            "version": __version__, "stages": describe_stages(), "styles": _style_names(),
            "samples": sorted(p.name for p in SAMPLES.glob("*.jpg")), "devices": list(DEVICES),
            "limits": {"upload_bytes": session.max_upload, "pixels": session.max_pixels},
            "options": {n: RunOptions.model_fields[n].description for n in ("seed", "device", "max_size")},
        }
    return JSONResponse(await run_in_threadpool(build))


def _style_names() -> list[str]:
    try:
        from artfx.stages.style.styles import BUILTIN
    except Exception:  # the style stage is not installed or broken: no built-in styles to offer
        return []
    return list(BUILTIN)


@_with_errors
async def upload(request: Request) -> Response:
    session: Session = request.app.state.session
    length = request.headers.get("content-length", "")
    limit = session.max_upload
    too_big = f"the file is larger than this page's upload limit of {limit / (1 << 20):g} MB"
    if length.isdigit() and int(length) > limit:
        return _error(too_big, 413)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            return _error(too_big, 413)
        chunks.append(chunk)
    if not total:
        return _error("the upload is empty")
    up = await session.accept(b"".join(chunks), request.query_params.get("name", ""))
    return JSONResponse(_upload_json(up))


def _upload_json(up: forms.Upload) -> dict[str, Any]:
    return {"id": up.id, "name": up.name, "width": up.width, "height": up.height,
            "view": f"/api/uploads/{up.id}/view"}


@_with_errors
async def sample(request: Request) -> Response:
    session: Session = request.app.state.session
    name = request.path_params["name"]
    path = SAMPLES / name
    if name not in {p.name for p in SAMPLES.glob("*.jpg")}:
        return _error(f"no sample called {name!r}", 404)
    up = await session.accept(path.read_bytes(), name)
    return JSONResponse(_upload_json(up))


async def upload_view(request: Request) -> Response:
    session: Session = request.app.state.session
    up = session.uploads.get(request.path_params["id"])
    if up is None:
        return _error("no such upload", 404)
    return FileResponse(session.folder / "views" / f"{up.id}.png", media_type="image/png")


@functools.lru_cache(maxsize=16)
def _thumbnail(name: str) -> bytes:
    from PIL import Image

    from artfx.stages.style.styles import resolve

    with Image.open(resolve(name)) as img:
        img = img.convert("RGB")
        img.thumbnail((160, 160))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=85)
    return out.getvalue()


async def style_thumbnail(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _style_names():
        return _error(f"no built-in style called {name!r}", 404)
    data = await run_in_threadpool(_thumbnail, name)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@_with_errors
async def check(request: Request) -> Response:
    session: Session = request.app.state.session
    body = await _json(request)
    try:
        upload, prepared, opts = await run_in_threadpool(prepare_request, session, body, None, True)
    except forms.FormError as exc:
        return JSONResponse({"ok": False, "errors": exc.errors})
    job = make_job(prepared, upload, opts, session.jobs_dir / "check", "-")
    return JSONResponse({"ok": True, "errors": [], "spec": prepared.spec, "command": job.command, "toml": job.toml})


@_with_errors
async def submit(request: Request) -> Response:
    session: Session = request.app.state.session
    body = await _json(request)
    job_id = new_id()
    folder = session.jobs_dir / job_id
    upload, prepared, opts = await run_in_threadpool(prepare_request, session, body, folder)
    try:
        device = await run_in_threadpool(session.device, opts.device)
    except UsageError as exc:
        raise forms.FormError([{"step": None, "field": "device", "message": str(exc)}]) from None
    job = make_job(prepared, upload, opts, folder, device, job_id)
    position = session.queue.submit(job)
    return JSONResponse({"id": job.id, "position": position, "spec": prepared.spec, "command": job.command,
                         "toml": job.toml})


def _job(request: Request) -> Any:
    return request.app.state.session.queue.jobs.get(request.path_params["id"])


async def job_status(request: Request) -> Response:
    job = _job(request)
    if job is None:
        return _error("no such job", 404)
    return JSONResponse(job.summary(request.app.state.session.queue.position(job)))


async def job_events(request: Request) -> Response:
    """Server-sent events: ``state`` (with the place in the queue), ``progress``, ``image`` (a URL of the latest
    live image) and, last, ``end`` (the job's summary: result and files, or the error), or ``stopped`` when the
    server is stopping."""
    session: Session = request.app.state.session
    job = _job(request)
    if job is None:
        return _error("no such job", 404)

    def event(kind: str, data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

    async def stream() -> Any:
        sent: tuple[str, int] | None = None
        progress_seq = image_seq = 0  # nothing to send until the job reports
        while True:
            state = job.state  # read first: whatever it reported before finishing is sent below
            position = session.queue.position(job)
            if (state, position) != sent:
                sent = (state, position)
                yield event("state", {"state": state, "position": position})
            if job.progress_seq != progress_seq:
                progress_seq = job.progress_seq
                yield event("progress", job.progress)
            if job.image_seq != image_seq:
                image_seq = job.image_seq
                yield event("image", {"url": f"/api/jobs/{job.id}/preview?seq={image_seq}"})
            if state in FINISHED:
                yield event("end", job.summary())
                return
            if session.stopping:
                yield event("stopped", {"message": "the server stopped"})
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def job_preview(request: Request) -> Response:
    job = _job(request)
    found = await run_in_threadpool(job.preview_png) if job is not None else None
    if found is None:
        return _error("no image yet", 404)
    return Response(found[1], media_type="image/png", headers={"Cache-Control": "no-store"})


async def job_cancel(request: Request) -> Response:
    job = _job(request)
    if job is None:
        return _error("no such job", 404)
    request.app.state.session.queue.cancel(job)
    return JSONResponse({"id": job.id, "state": job.state})


async def job_file(request: Request) -> Response:
    job = _job(request)
    name = request.path_params["name"]
    path = job.files.get(name) if job is not None else None
    if path is None or not path.is_file():
        return _error("no such file", 404)
    return FileResponse(path, filename=name)


# ---- the app -------------------------------------------------------------------------------------------------------
def create_app(max_upload: int = MAX_UPLOAD, max_pixels: int = MAX_PIXELS, allowed_hosts: list[str] | None = None,
               tmp_dir: str | None = None, decode_budget: int | None = None,
               decode_wait: float = DECODE_WAIT) -> Starlette:
    """The page and its API. Its session folder is made now and removed when the app shuts down
    (``app.state.session``). ``allowed_hosts``: the Host names to answer (None: any, as in tests).
    ``decode_budget``: bytes of memory that uploads being decoded may hold together (default: two of the largest
    allowed); an upload that finds no room for ``decode_wait`` seconds is answered 503 with Retry-After."""
    session = Session(max_upload, max_pixels, tmp_dir, decode_budget, decode_wait)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        try:
            yield
        finally:
            await run_in_threadpool(session.close)

    routes = [
        Route("/", index), Route("/api/info", info),
        Route("/api/uploads", upload, methods=["POST"]), Route("/api/samples/{name}", sample, methods=["POST"]),
        Route("/api/uploads/{id}/view", upload_view), Route("/api/styles/{name}", style_thumbnail),
        Route("/api/check", check, methods=["POST"]), Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{id}", job_status), Route("/api/jobs/{id}/events", job_events),
        Route("/api/jobs/{id}/preview", job_preview), Route("/api/jobs/{id}/cancel", job_cancel, methods=["POST"]),
        Route("/api/jobs/{id}/files/{name}", job_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(_Guard)]
    if allowed_hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.session = session
    return app


class _Guard:
    """Every POST must carry ``X-Artfx`` (so another site's page cannot post here without a CORS pre-flight,
    which this app never grants); every answer says not to sniff types or be framed."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if scope["method"] == "POST" and b"x-artfx" not in headers:
            return await _error("POST requests need the X-Artfx header", 403)(scope, receive, send)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""A session of the page: its temporary folder, the uploads (checked against the limits and the decompression-bomb
guard, and decoded within a memory budget), the devices' queue, and a request's form turned into what a job
needs."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator

from artfx.errors import ArtfxError, ImageError, UsageError
from artfx.io.files import hidden_character
from artfx.options import RunOptions
from artfx.web import forms
from artfx.web.jobs import JobQueue, new_id

VIEW_SIDE = 1600  # long side (px) of the input as the page shows it
MAX_UPLOAD = 25 << 20
MAX_PIXELS = 40_000_000
DECODE_BYTES_PER_PIXEL = 24  # memory to accept an upload, per pixel: 18 measured for an 8-bit PNG (a 39.7 MP one
# of 38 KB: 720 MB), more for 16-bit files (their integer pixels beside the float ones)
DECODE_WAIT = 5.0  # seconds an upload waits for memory before the page is told to try again
RETRY_AFTER = 2  # seconds, said to the page with 503


class TooLarge(ImageError):
    """An upload over the page's limits (HTTP 413)."""


class Busy(ArtfxError):
    """The uploads being decoded hold the session's decoding memory: try again shortly (HTTP 503)."""

    retry_after = RETRY_AFTER


class DecodeBudget:
    """Memory for decoding uploads, shared by all of a session's uploads. A small file can declare 40 megapixels
    (a 38 KB PNG of one colour) and cost 720 MB to decode; without a bound, parallel uploads add up (8 reached
    4.3 GB, and the server's thread pool allows 40). Each upload takes its cost, estimated from the header, before
    decoding and gives it back after; one that does not fit waits (without a thread) and then is told to try
    again. An upload alone always fits, so that the largest one allowed can still be accepted."""

    def __init__(self, budget: int, wait: float = DECODE_WAIT):
        self.budget, self.wait = budget, wait
        self.used = 0
        self._lock = threading.Lock()

    def _take(self, cost: int) -> bool:
        with self._lock:
            if self.used and self.used + cost > self.budget:
                return False
            self.used += cost
            return True

    def _give(self, cost: int) -> None:
        with self._lock:
            self.used -= cost

    @contextlib.asynccontextmanager
    async def room(self, cost: int) -> AsyncIterator[None]:
        """Hold ``cost`` bytes of the budget while decoding; Busy when there is no room after ``wait`` seconds."""
        deadline = time.monotonic() + self.wait
        while not self._take(cost):
            if time.monotonic() >= deadline:
                raise Busy(f"the server is busy decoding other uploads; try again in {RETRY_AFTER} seconds")
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            self._give(cost)


NAME_CHARS = 100  # longest upload name kept (characters), its suffix included
NAME_BYTES = 200  # and in UTF-8 bytes: with "-art.png" and the like added it stays under the 255 a file system takes


def safe_name(name: str) -> str:
    """A file name from the browser, as a plain name in our own folder (never a path) that shows what it is:
    control and formatting characters (a right-to-left override, a zero-width space) and the characters Windows
    refuses become ``-``, and a long name is shortened in its stem, so that its suffix stays."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join("-" if hidden_character(ch) else ch for ch in base)
    base = re.sub(r"[:*?\"<>|]+", "-", base).strip(" .")
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem or not re.fullmatch(r"[A-Za-z0-9]{1,8}", suffix):
        stem, suffix = base, ""
    suffix = f".{suffix}" if suffix else ""
    while stem and (len(stem) + len(suffix) > NAME_CHARS or len((stem + suffix).encode("utf-8")) > NAME_BYTES):
        stem = stem[:-1]
    base = (stem.rstrip(" .") + suffix) if stem.rstrip(" .") else ""
    return base or "photo.png"


class Session:
    """One run of the app: its temporary folder, uploads, jobs and limits."""

    def __init__(self, max_upload: int = MAX_UPLOAD, max_pixels: int = MAX_PIXELS, tmp_dir: str | None = None,
                 decode_budget: int | None = None, decode_wait: float = DECODE_WAIT):
        self.folder = Path(tempfile.mkdtemp(prefix="artfx-serve-", dir=tmp_dir)).resolve()
        self.uploads_dir = self.folder / "uploads"
        self.jobs_dir = self.folder / "jobs"
        self.uploads_dir.mkdir()
        self.jobs_dir.mkdir()
        self.uploads: dict[str, forms.Upload] = {}
        self.queue = JobQueue()
        self.max_upload = max_upload
        self.max_pixels = max_pixels
        # two of the largest uploads allowed at a time, more of smaller ones
        self.decoding = DecodeBudget(decode_budget if decode_budget is not None else
                                     2 * max_pixels * DECODE_BYTES_PER_PIXEL, decode_wait)
        self._devices: dict[str, str] = {}
        self.stopping = False

    def decode_cost(self, data: bytes, name: str) -> int:
        """The memory decoding an upload will take, from its header's dimensions (no pixel decoded): TooLarge
        when they are over the page's pixel limit."""
        from artfx.io.read import image_size

        size = image_size(data)
        if size is None:  # not an image Pillow knows: read_image will say so, after decoding nothing
            return self.max_pixels * DECODE_BYTES_PER_PIXEL
        if size[0] * size[1] > self.max_pixels:
            raise TooLarge(f"{safe_name(name)}: {size[0]}x{size[1]} is more than this page's limit of "
                           f"{self.max_pixels / 1e6:g} megapixels")
        return size[0] * size[1] * DECODE_BYTES_PER_PIXEL

    async def accept(self, data: bytes, name: str) -> forms.Upload:
        """An upload checked from its header, then decoded within the session's decoding memory (Busy when other
        uploads hold it): what the page's routes call, from the event loop."""
        from starlette.concurrency import run_in_threadpool

        cost = await run_in_threadpool(self.decode_cost, data, name)
        async with self.decoding.room(cost):
            return await run_in_threadpool(self.add_upload, data, name)

    def add_upload(self, data: bytes, name: str) -> forms.Upload:
        """Check an uploaded image (the pixel limit from its header, then artfx's reader with the
        decompression-bomb guard) and keep it, with a PNG the page can show. :meth:`accept` bounds the memory
        that parallel calls take."""
        from artfx.io import encode_image, read_image, resize_long_side

        self.decode_cost(data, name)
        name = safe_name(name)
        try:
            picture = read_image(data, name=name)
        except ArtfxError as exc:
            raise type(exc)(str(exc.args[0])) from None  # without the CLI's --allow-huge hint
        upload = forms.Upload(new_id(), name, Path(), picture.rgb.shape[1], picture.rgb.shape[0])
        folder = self.uploads_dir / upload.id
        folder.mkdir()
        upload.path = folder / name
        upload.path.write_bytes(data)
        rgb, alpha = resize_long_side(picture.rgb, VIEW_SIDE, alpha=picture.alpha) \
            if max(picture.rgb.shape[:2]) > VIEW_SIDE else (picture.rgb, picture.alpha)
        (self.folder / "views").mkdir(exist_ok=True)
        (self.folder / "views" / f"{upload.id}.png").write_bytes(encode_image(rgb, alpha=alpha))
        self.uploads[upload.id] = upload
        return upload

    def device(self, name: str) -> str:
        """The device a job runs on (``auto`` resolved once), which is also the queue it waits in."""
        from artfx.devices import resolve_device

        if name not in self._devices:
            self._devices[name] = resolve_device(name)
        return self._devices[name]

    def stop(self) -> None:
        """Stop taking and running jobs (without waiting): running jobs are cancelled, event streams end."""
        self.stopping = True
        self.queue.close(wait=0)

    def close(self) -> None:
        """Stop, wait a little for running jobs to notice, and remove the session's folder."""
        self.stopping = True
        self.queue.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _options(raw: Any) -> RunOptions:
    raw = raw if isinstance(raw, dict) else {}
    values = {k: raw.get(k) for k in ("seed", "device", "max_size") if raw.get(k) not in (None, "")}
    try:
        return RunOptions.build(**values)
    except UsageError as exc:
        field = str(exc).split(" ", 1)[0]
        raise forms.FormError([{"step": None, "field": field, "message": str(exc)}]) from None


PLACEHOLDER = forms.Upload("", "photo.jpg", Path("photo.jpg"))  # what /api/check names the photo before one


def prepare_request(session: Session, body: dict[str, Any], out_dir: Path | None,
                    checking: bool = False) -> tuple[Any, Any, Any]:
    """(upload, prepared form, run options) of a request, or FormError listing every problem. ``checking``:
    no photo is needed yet (the command shows a placeholder name), and nothing will run."""
    errors: list[dict[str, Any]] = []
    upload = session.uploads.get(str(body.get("input") or ""))
    if upload is None and checking:
        upload = PLACEHOLDER
    elif upload is None:
        errors.append({"step": None, "field": "input", "message": "choose a photo first"})
    try:
        opts = _options(body.get("options"))
    except forms.FormError as exc:
        errors += exc.errors
        opts = None
    try:
        stem = Path(upload.name).stem if upload else "photo"
        prepared = forms.prepare(body.get("steps"), session.uploads, session.uploads_dir, out_dir, stem)
    except forms.FormError as exc:
        errors += exc.errors
        prepared = None
    if errors:
        raise forms.FormError(errors)
    return upload, prepared, opts

"""Moving pictures in and out, one frame at a time: videos through PyAV (FFmpeg in its wheel, no system ffmpeg),
animated GIFs and photo lists through Pillow and artfx's reader. Nothing here holds more than a frame or two, so
memory does not grow with a clip's length.

Frames are uint8 (H, W, 3) RGB arrays, upright (a video's display rotation applied, as stills apply their EXIF
orientation). Sources hand them out at a constant frame rate (:meth:`VideoSource.frames`): each frame keeps its
own time, and the frames are resampled by their timestamps as FFmpeg's ``fps`` filter does (a frame goes to the
output slot nearest its time; an empty slot repeats the frame before, a slot with several keeps the last), so a
variable-frame-rate phone clip or a GIF whose frames last 100 ms and 1 s lasts as long as the input and its sound
stays in sync. ``--start`` and ``--duration`` cut a window out of a video or GIF; the audio is cut to match.

Videos are written as H.264 (mp4, mov, mkv, avi) or VP9 (webm) in yuv420p, their ``quality`` (1-100) mapped onto
the encoder's constant-quality scale; the input's audio track is copied when the container takes its codec, else
re-encoded (AAC, or Opus for webm). The same frames always give the same bytes (see :class:`VideoWriter`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from artfx.errors import ImageError, InputError, UsageError

log = logging.getLogger("artfx")

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}
GIF_SUFFIX = ".gif"
PHOTO_FPS = Fraction(10)  # a photo sequence's frame rate unless --fps says otherwise
MAX_GIF_FPS = Fraction(50)  # a GIF's rate: 1 / the greatest common divisor of its frames' durations, at most this
_COPY_AUDIO = {".webm": {"opus", "vorbis"}, ".avi": {"mp3", "aac", "ac3", "pcm_s16le"}}
_ANY_AUDIO = {"aac", "mp3", "opus", "vorbis", "ac3", "alac", "flac", "pcm_s16le"}
FITS = ("crop", "pad", "stretch")


@dataclass(frozen=True)
class AudioTrack:
    """The input's sound, for the writer: ``path``'s first audio stream from ``start`` seconds (of the input's
    own timeline) to ``end`` (None: to its end), moved to start at 0 with the video."""

    path: Path
    start: float = 0.0
    end: float | None = None


@dataclass
class ClipInfo:
    """What is known of a sequence before decoding it (within the --start/--duration window). A video's size is
    the stream's until its first frame is decoded, then upright (``rotation`` applied)."""

    width: int
    height: int
    fps: Fraction
    frames: int | None  # frames at ``fps``; None when the container does not say
    audio: AudioTrack | None = None
    kind: str = "video"  # video, gif or photos
    rotation: int = 0  # degrees the decoded pictures are turned counter-clockwise to stand upright


def _av_error(path: Path, exc: Exception) -> ImageError:
    """A PyAV error as one line that names the file and says what is wrong, without FFmpeg's raw errno."""
    import av

    text = " ".join(str(getattr(exc, "strerror", None) or exc).split()) or type(exc).__name__
    if isinstance(exc, av.error.InvalidDataError) or "invalid data" in text.lower():
        return ImageError(f"cannot read the video {path}: it is damaged or truncated ({text[:1].lower()}{text[1:]})")
    return ImageError(f"cannot read the video {path}: {text}")


def _window(start: float | None, duration: float | None) -> tuple[float, float | None]:
    return float(start or 0.0), (None if duration is None else float(duration))


def _seconds(t: float) -> str:
    return f"{t:.3f}".rstrip("0").rstrip(".") + " s"


# ---- resampling by timestamps -----------------------------------------------------------------------------------
def at_rate(timed: Iterator[tuple[float, float | None, np.ndarray]], fps: Fraction, start: float = 0.0,
            stop: float | None = None, what: str = "the clip", step: float | None = None) -> Iterator[np.ndarray]:
    """Frames at a constant ``fps`` from ``(time, duration, frame)`` triples (seconds; duration None when not
    known), as FFmpeg's fps filter makes them: output slot j (time ``start + j / fps``) shows the last frame whose
    time rounds to slot j or before. The output lasts until the last frame's end (or ``stop``); a frame without a
    duration lasts ``step`` seconds (default: one output frame)."""
    rate = float(fps)
    cur, j, end = None, 0, None
    limit = None if stop is None else math.floor((stop - start) * rate + 0.5)
    for t, dur, frame in timed:
        if stop is not None and t >= stop - 1e-9:
            end = stop
            break
        slot = math.floor((t - start) * rate + 0.5)
        if cur is not None:
            while j < slot and (limit is None or j < limit):
                yield cur
                j += 1
        cur = frame
        end = t + (dur or step or 1.0 / rate)
    if cur is None:
        raise UsageError(f"--start {_seconds(start)} is past the end of {what}") if start > 0 else \
            ImageError(f"{what} has no frames")
    if stop is not None:
        end = min(end, stop)
    n = max(j + 1, math.floor((end - start) * rate + 0.5))
    if limit is not None:
        n = min(n, max(limit, 1))
    while j < n:
        yield cur
        j += 1


class VideoSource:
    """A video file, decoded frame by frame (the first video stream), turned upright, within a time window."""

    def __init__(self, path: Path, start: float | None = None, duration: float | None = None):
        import av

        self.path = path
        self.start, self.duration = _window(start, duration)
        try:
            self.container = av.open(str(path))
        except Exception as exc:  # av.error.* (corrupt, truncated, not a video)
            raise _av_error(path, exc) from None
        try:
            self.info = self._probe()
        except BaseException:
            self.container.close()
            raise

    def _probe(self) -> ClipInfo:
        path = self.path
        if not self.container.streams.video:
            raise ImageError(f"{path} holds no video frames (no video stream)")
        stream = self.container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.name or ctx.name == "none" or not _decodable(ctx.name):
            raise ImageError(f"{path}: its video codec ({stream.codec_tag or 'unknown'}) is not supported")
        if not ctx.width or not ctx.height:
            raise ImageError(f"{path}: the video stream has no picture size (corrupt or unsupported)")
        rate = Fraction(stream.average_rate or stream.guessed_rate or 25)
        if rate <= 0 or rate > 1000:
            rate = Fraction(stream.guessed_rate or 25) if 0 < (stream.guessed_rate or 0) <= 1000 else Fraction(25)
        self.rate = rate.limit_denominator(100000)
        # nothing is decoded here (a frame's size is checked before any is decoded): the display rotation, which
        # FFmpeg hands out with the frames, is read from the first one decoded (see _turned)
        self.turn: str | None = None
        self.t0 = float(stream.start_time * stream.time_base) if stream.start_time is not None and \
            stream.time_base else 0.0
        lengths = [float(stream.duration * stream.time_base)] if stream.duration and stream.time_base else []
        if self.container.duration:
            lengths.append(self.container.duration / 1_000_000)
        length = max(lengths) if lengths else None
        if length is not None and self.start >= self.t0 + length:
            raise UsageError(f"--start {_seconds(self.start)} is past the end of {path} ({_seconds(length)})")
        span = None if length is None else length - max(0.0, self.start - self.t0)
        if self.duration is not None:
            span = self.duration if span is None else min(span, self.duration)
        frames = None
        if span is not None:
            frames = max(1, math.floor(span * float(self.rate) + 0.5))
        elif stream.frames and not self.start and self.duration is None:
            frames = stream.frames
        origin = self.start if self.start else self.t0
        stop = None if self.duration is None else origin + self.duration
        audio = AudioTrack(path, origin, stop) if self.container.streams.audio else None
        return ClipInfo(ctx.width, ctx.height, self.rate, frames, audio)

    def _turned(self, frame) -> np.ndarray:
        """The decoded ``frame`` as an upright uint8 RGB array; the first one sets the turn for all (and the
        info's size and rotation)."""
        if self.turn is None:
            self.turn = _orientation(frame)
            self.info.rotation = _TURN_DEGREES.get(self.turn, 0)
            if self.info.rotation in (90, 270):
                self.info.width, self.info.height = frame.height, frame.width
        return _upright(frame.to_ndarray(format="rgb24"), self.turn)

    def _timed(self) -> Iterator[tuple[float, float | None, np.ndarray]]:
        """(time, duration, upright frame) for every decoded frame from the window's start on (a little before:
        the frame shown at the start), seeking close to it first."""
        try:
            yield from self._decoded(seek=self.start > 0)
        except _Overshot:  # the seek landed after the start: from the beginning, then
            yield from self._decoded(seek=False)

    def _decoded(self, seek: bool) -> Iterator[tuple[float, float | None, np.ndarray]]:
        import av

        self.container.close()
        self.container = av.open(str(self.path))
        stream = self.container.streams.video[0]
        if seek and stream.time_base:
            try:  # to the key frame a second before the start
                self.container.seek(int(max(0.0, self.start - 1.0) / stream.time_base), stream=stream)
            except Exception as exc:
                raise _Overshot from exc
        stream.thread_type = "AUTO"
        n, prev, step = 0, None, 1.0 / float(self.rate)
        try:
            for frame in self.container.decode(stream):
                t = _time_of(frame, stream)
                t = (prev + step if prev is not None else 0.0) if t is None else t
                if seek and n == 0 and t > self.start + step / 2:
                    raise _Overshot
                prev, n = t, n + 1
                dur = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else None
                yield t, dur, self._turned(frame)
        except (ImageError, UsageError, _Overshot):
            raise
        except Exception as exc:
            if n == 0:
                raise _av_error(self.path, exc) from None
            raise ImageError(f"the video {self.path} is damaged or truncated after frame {n}: "
                             f"{' '.join(str(getattr(exc, 'strerror', None) or exc).split())}") from None

    def frames(self, fps: Fraction | None = None) -> Iterator[np.ndarray]:
        """The clip's frames at a constant ``fps`` (default: its own rate), upright, within the window."""
        origin = self.start if self.start else self.t0
        stop = None if self.duration is None else origin + self.duration
        yield from at_rate(self._timed(), Fraction(fps or self.info.fps), origin, stop, str(self.path),
                           1.0 / float(self.rate))

    def close(self) -> None:
        self.container.close()


class _Overshot(Exception):
    """A seek that landed after the window's start (or failed): decode from the beginning instead."""


def _time_of(frame, stream) -> float | None:
    tb = frame.time_base or stream.time_base
    if frame.pts is None or not tb:
        return None
    return float(frame.pts * tb)


def _orientation(frame) -> str:
    """How to turn a decoded frame upright, from its display matrix, exactly as FFmpeg's command line does
    (``autorotate``): "" (as decoded), clock, cclock, clock_flip, cclock_flip (its transpose filter), or hflip,
    vflip, hvflip."""
    try:
        matrix = None
        for side in frame.side_data:
            if "DISPLAYMATRIX" in str(side.type).upper():
                matrix = np.frombuffer(bytes(side), "<i4")[:9]
        if matrix is None:
            return ""
        theta = -float(frame.rotation)  # FFmpeg's get_rotation: the clockwise angle
    except Exception:  # no side data support: as decoded
        return ""
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        return "cclock_flip" if matrix[3] > 0 else "clock"
    if abs(theta - 270) < 1:
        return "clock_flip" if matrix[3] < 0 else "cclock"
    if abs(theta - 180) < 1:
        h, v = matrix[0] < 0, matrix[4] < 0
        return "hvflip" if h and v else "hflip" if h else "vflip" if v else ""
    if abs(theta) < 1 and matrix[4] < 0:
        return "vflip"
    if abs(theta) >= 1:
        log.warning("the video's display rotation of %.0f degrees is not a quarter turn: left as decoded", theta)
    return ""


_TURN_DEGREES = {"clock": 270, "cclock": 90, "clock_flip": 270, "cclock_flip": 90, "hvflip": 180}


def _upright(rgb: np.ndarray, turn: str) -> np.ndarray:
    if not turn:
        return rgb
    if turn == "clock":
        rgb = np.rot90(rgb, -1)
    elif turn == "cclock":
        rgb = np.rot90(rgb, 1)
    elif turn == "cclock_flip":  # turned counter-clockwise, then flipped upside down: the transpose
        rgb = rgb.transpose(1, 0, 2)
    elif turn == "clock_flip":
        rgb = np.rot90(rgb, -1)[::-1]
    else:
        rgb = rgb[::-1 if "v" in turn else 1, ::-1 if turn.startswith("h") else 1]
    return np.ascontiguousarray(rgb)


def _decodable(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "r")
        return True
    except Exception:
        return False


class GifSource:
    """An animated GIF, frame by frame (Pillow applies each frame's disposal), each frame for its own time."""

    def __init__(self, path: Path, start: float | None = None, duration: float | None = None,
                 allow_huge: bool = False):
        from artfx.io.read import open_image, pillow_guard

        self.path = path
        self.start, self.duration = _window(start, duration)
        self.image = open_image(path, allow_huge)  # the bomb guard before any frame is decoded
        self.guard = lambda: pillow_guard(str(path), allow_huge)  # Pillow checks the size again at each seek
        try:
            with self.guard():
                self.image.load()
                n = getattr(self.image, "n_frames", 1)
                self.durations = []
                for i in range(n):
                    self.image.seek(i)
                    self.durations.append(_gif_delay(self.image.info.get("duration")))
                self.image.seek(0)
        except Exception as exc:
            raise ImageError(f"cannot read the GIF {path}: {exc}") from None
        step = math.gcd(*self.durations) if self.durations else 100
        fps = min(Fraction(1000, step), MAX_GIF_FPS)
        total = sum(self.durations) / 1000
        if self.start >= total:
            raise UsageError(f"--start {_seconds(self.start)} is past the end of {path} ({_seconds(total)})")
        span = total - self.start if self.duration is None else min(total - self.start, self.duration)
        self.info = ClipInfo(self.image.width, self.image.height, fps, max(1, math.floor(span * fps + 0.5)),
                             kind="gif")

    def _timed(self) -> Iterator[tuple[float, float | None, np.ndarray]]:
        t = 0.0
        try:
            for i, ms in enumerate(self.durations):
                with self.guard():
                    self.image.seek(i)
                    rgb = np.asarray(self.image.convert("RGB"))
                yield t, ms / 1000, rgb
                t += ms / 1000
        except (OSError, EOFError) as exc:
            raise ImageError(f"the GIF {self.path} is damaged: {exc}") from None

    def frames(self, fps: Fraction | None = None) -> Iterator[np.ndarray]:
        stop = None if self.duration is None else self.start + self.duration
        yield from at_rate(self._timed(), Fraction(fps or self.info.fps), self.start, stop, str(self.path))

    def close(self) -> None:
        self.image.close()


def _gif_delay(ms) -> int:
    """A GIF frame's delay in ms as browsers show it: 0 or 10 ms (often meant as "as fast as possible") is 100."""
    ms = int(ms or 0)
    return 100 if ms <= 10 else ms


class PhotoSource:
    """Photos as the frames of one animation, each read by artfx's reader and brought to the first's size:
    ``fit`` crop (scaled to cover it, centred), pad (scaled to fit inside, black bars) or stretch."""

    def __init__(self, paths: list[Path], allow_huge: bool = False, fit: str = "crop"):
        from artfx.io import read_image

        if not paths:
            raise InputError("no photos to make an animation from")
        if fit not in FITS:
            raise UsageError(f"--fit must be one of {', '.join(FITS)}, not {fit!r}")
        self.paths, self.allow_huge, self.fit = paths, allow_huge, fit
        first = read_image(paths[0], allow_huge=allow_huge).rgb
        self.info = ClipInfo(first.shape[1], first.shape[0], PHOTO_FPS, len(paths), kind="photos")

    def frames(self, fps: Fraction | None = None) -> Iterator[np.ndarray]:
        """Every photo once, in order (photos have no time of their own: the output's rate is theirs)."""
        from artfx.io import read_image

        h, w = self.info.height, self.info.width
        told = False
        for path in self.paths:
            rgb = read_image(path, allow_huge=self.allow_huge).rgb
            if rgb.shape[:2] != (h, w):
                if not told and abs(rgb.shape[1] / rgb.shape[0] - w / h) > 0.01:
                    log.warning("%s is %dx%d, not %dx%d like the first photo: %s (--fit crop|pad|stretch)", path,
                                rgb.shape[1], rgb.shape[0], w, h,
                                {"crop": "scaled and cropped, centred", "pad": "scaled and padded",
                                 "stretch": "stretched"}[self.fit])
                    told = True
                rgb = fit_to(rgb, h, w, self.fit)
            yield np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)

    def close(self) -> None:
        pass


def fit_to(rgb: np.ndarray, height: int, width: int, fit: str = "crop") -> np.ndarray:
    """``rgb`` (float (h, w, 3)) brought to ``height`` x ``width``: ``crop`` scales it to cover the frame and
    cuts the overflow evenly from both sides, ``pad`` scales it to fit inside and fills the rest with black,
    ``stretch`` scales each side on its own."""
    from artfx.io import resize_to

    h, w = rgb.shape[:2]
    if fit == "stretch" or (h, w) == (height, width):
        return resize_to(rgb, height, width)
    scale = max(height / h, width / w) if fit == "crop" else min(height / h, width / w)
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    if fit == "crop":
        sh, sw = max(sh, height), max(sw, width)
        scaled = resize_to(rgb, sh, sw)
        y0, x0 = (sh - height) // 2, (sw - width) // 2
        return np.ascontiguousarray(scaled[y0: y0 + height, x0: x0 + width])
    sh, sw = min(sh, height), min(sw, width)
    out = np.zeros((height, width, 3), np.float32)
    y0, x0 = (height - sh) // 2, (width - sw) // 2
    out[y0: y0 + sh, x0: x0 + sw] = resize_to(rgb, sh, sw)
    return out


def is_animated_gif(path: Path, allow_huge: bool = False) -> bool:
    """Whether ``path`` is a GIF of several frames. One too large for the bomb guard is that error (a huge GIF is
    no still because its frames could not be counted)."""
    if path.suffix.lower() != GIF_SUFFIX or not path.is_file():
        return False
    from artfx.io.read import open_image

    try:
        im = open_image(path, allow_huge)
    except ImageError as exc:
        if "too large" in str(exc):
            raise
        return False
    from artfx.io.read import pillow_guard

    with im, pillow_guard(str(path), allow_huge):
        try:
            return getattr(im, "n_frames", 1) > 1
        except Exception:  # noqa: BLE001 - a damaged GIF: read_image says what is wrong with it
            return False


def open_source(paths: list[Path], allow_huge: bool = False, opts=None):
    """The frame source for these inputs: one video or animated GIF, or several photos. ``opts`` (RunOptions):
    ``start`` and ``duration`` cut a video or GIF, ``fit`` brings photos of other sizes to the first's."""
    start, duration = getattr(opts, "start", None), getattr(opts, "duration", None)
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        return VideoSource(paths[0], start, duration)
    if len(paths) == 1 and paths[0].suffix.lower() == GIF_SUFFIX:
        return GifSource(paths[0], start, duration, allow_huge)
    if start or duration is not None:
        raise UsageError("--start and --duration cut a video or an animated GIF, not a sequence of photos")
    return PhotoSource(paths, allow_huge, getattr(opts, "fit", None) or "crop")


def resample(frames: Iterator[np.ndarray], fps_in: Fraction, fps_out: Fraction) -> Iterator[np.ndarray]:
    """Frames of a constant ``fps_in`` at another constant rate, by their times (:func:`at_rate`). The sources'
    own :meth:`frames` take the output rate directly, from each frame's own time: prefer them."""
    if fps_in == fps_out:
        yield from frames
        return
    step = 1.0 / float(fps_in)
    yield from at_rate(((i * step, step, f) for i, f in enumerate(frames)), fps_out)


# ---- writers ---------------------------------------------------------------------------------------------------
def crf_for(suffix: str, quality: int) -> int:
    """The encoder's constant-rate factor for a quality of 1-100 (80: x264 CRF 19, VP9 CRF 24)."""
    q = min(max(int(quality), 1), 100)
    if suffix == ".webm":
        return round(60 - 0.45 * (q - 1))
    return round(45 - 0.33 * (q - 1))


ENCODER_THREADS = 4  # fixed, not the machine's core count: x264's stream depends on its thread count


class VideoWriter:
    """An H.264/VP9 file written frame by frame at ``fps``, the audio of ``audio_from`` (a path, or an
    :class:`AudioTrack` for a window of it) muxed in as it goes.

    The same frames give the same bytes, run after run and machine after machine: the encoders run on a fixed
    number of threads (x264's output depends on it), x264's macroblock tree is off (with it, the stream changed
    with the contents of freed memory: 3 different streams in 12 encodes of the same 40 frames in one process
    on this machine; without it, 1; it costs about 7 % in size at the same CRF, -0.3 dB PSNR on the bunny at
    720p), and the container is written bit-exact (Matroska and WebM otherwise draw random segment and track
    ids, and MP4 stamps the muxer's version).

    H.264 in yuv420p needs even sizes, and its cropping works in steps of two pixels: an odd width or height is
    padded (the last column or row repeated) and said once; VP9 (webm) keeps any size."""

    def __init__(self, path: Path, suffix: str, width: int, height: int, fps: Fraction, quality: int,
                 audio_from: Path | AudioTrack | None = None, comment: str | None = None):
        import av

        codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
        self.size = (height, width)
        if codec == "libx264":
            self.width, self.height = width + width % 2, height + height % 2
            if (self.width, self.height) != (width, height):
                log.warning("H.264 needs even sizes: the %dx%d frames are written as %dx%d, the last %s repeated "
                            "(.webm, .gif or a folder of PNG frames keep %dx%d)", width, height, self.width,
                            self.height, "column and row" if width % 2 and height % 2 else
                            "column" if width % 2 else "row", width, height)
        else:
            self.width, self.height = width, height
        self.fps = Fraction(fps).limit_denominator(100000)
        self.out = av.open(str(path), mode="w", format=_FORMAT.get(suffix), options={"fflags": "+bitexact"})
        if comment:
            self.out.metadata["comment"] = comment
        self.stream = self.out.add_stream(codec, rate=self.fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        self.stream.codec_context.time_base = 1 / self.fps
        self.stream.codec_context.thread_count = ENCODER_THREADS
        crf = str(crf_for(suffix, quality))
        if codec == "libvpx-vp9":
            self.stream.options = {"crf": crf, "b": "0"}
        else:
            self.stream.options = {"crf": crf, "preset": "medium", "x264-params": "mbtree=0"}
        self.index = 0
        self.audio_in = self.audio_packets = self.audio_out = None
        self.transcode = False
        if audio_from is not None:
            track = audio_from if isinstance(audio_from, AudioTrack) else AudioTrack(Path(audio_from))
            self._open_audio(track, suffix)

    def _open_audio(self, track: AudioTrack, suffix: str) -> None:
        import av

        self.audio_in = av.open(str(track.path))
        if not self.audio_in.streams.audio:
            self.audio_in.close()
            self.audio_in = None
            return
        self.track = track
        a = self.audio_in.streams.audio[0]
        allowed = _COPY_AUDIO.get(suffix, _ANY_AUDIO)
        if a.codec_context.name in allowed:
            self.audio_out = self.out.add_stream_from_template(a)
        else:
            self.transcode = True
            self.audio_out = self.out.add_stream("libopus" if suffix == ".webm" else "aac",
                                                 rate=48000 if suffix == ".webm" else (a.rate or 48000))
            self.audio_out.codec_context.thread_count = 1
        if track.start > 0:
            try:  # near the window's start; packets before it are dropped below
                self.audio_in.seek(int(max(0.0, track.start - 1.0) * 1_000_000))
            except Exception:
                pass
        self.audio_packets = self.audio_in.demux(a)
        self._pending = None

    def _mux_audio(self, until: float | None) -> None:
        """Audio packets up to ``until`` seconds of the output (all that are left when None), interleaved with
        the video; with a window, those before its start are dropped, the rest moved to start with the video,
        and those from its end on left out (to the nearest packet: about 20 ms)."""
        if self.audio_packets is None:
            return
        start, end = self.track.start, self.track.end
        while True:
            packet = self._pending if self._pending is not None else next(self.audio_packets, None)
            self._pending = None
            if packet is not None and packet.dts is not None and end is not None and \
                    float(packet.dts * packet.time_base) >= end:
                packet = None
            if packet is None:
                self.audio_packets = None
                if self.transcode:
                    for p in self.audio_out.encode(None):
                        self.out.mux(p)
                return
            if packet.dts is None:
                continue
            t = float(packet.dts * packet.time_base)
            if start > 0 and float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base) \
                    < start - 1e-6:
                continue
            if until is not None and t - start > until:
                self._pending = packet
                return
            if self.transcode:
                for frame in packet.decode():
                    frame.pts = None
                    for p in self.audio_out.encode(frame):
                        self.out.mux(p)
            else:
                if start > 0:
                    shift = round(start / packet.time_base)
                    packet.pts = None if packet.pts is None else packet.pts - shift
                    packet.dts = packet.dts - shift
                packet.stream = self.audio_out
                self.out.mux(packet)

    def write(self, frame: np.ndarray) -> None:
        import av

        h, w = self.size
        if frame.shape[:2] != (h, w):
            frame = frame[:h, :w]
        if (self.height, self.width) != frame.shape[:2]:
            frame = np.pad(frame, ((0, self.height - frame.shape[0]), (0, self.width - frame.shape[1]), (0, 0)),
                           mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.index
        vf.time_base = 1 / self.fps
        for packet in self.stream.encode(vf):
            self.out.mux(packet)
        self.index += 1
        self._mux_audio(float(self.index / self.fps))

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.out.mux(packet)
        self._mux_audio(None)
        self.out.close()
        if self.audio_in is not None:
            self.audio_in.close()

    def abort(self) -> None:
        for c in (self.out, self.audio_in):
            try:
                if c is not None:
                    c.close()
            except Exception:
                pass


_FORMAT = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


class GifWriter:
    """An animated GIF written frame by frame (each frame its own 255-colour palette), looping."""

    def __init__(self, path: Path, fps: Fraction):
        self.fp = open(path, "wb")
        self.duration = max(20, round(1000 / float(fps)))
        self.started = False

    def write(self, frame: np.ndarray) -> None:
        from PIL import GifImagePlugin, Image

        p = Image.fromarray(frame).quantize(colors=255, method=Image.Quantize.MEDIANCUT)
        if not self.started:
            header, _ = GifImagePlugin.getheader(p, None, {"loop": 0})
            self.fp.write(b"".join(header))
            self.started = True
        for chunk in GifImagePlugin.getdata(p, (0, 0), duration=self.duration, include_color_table=True):
            self.fp.write(chunk)

    def close(self) -> None:
        self.fp.write(b";")
        self.fp.close()

    def abort(self) -> None:
        self.fp.close()


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a video or GIF written by artfx (or any other), uint8 RGB: for tests and benchmarks."""
    source = open_source([Path(path)])
    try:
        yield from source.frames()
    finally:
        source.close()

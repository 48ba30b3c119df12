"""Moving pictures in and out, one frame at a time: videos through PyAV (FFmpeg in its wheel, no system ffmpeg),
animated GIFs and photo lists through Pillow and artfx's reader. Nothing here holds more than a frame or two, so
memory does not grow with a clip's length.

Frames are uint8 (H, W, 3) RGB arrays. Videos are written as H.264 (mp4, mov, mkv, avi) or VP9 (webm) in
yuv420p, their ``quality`` (1-100) mapped onto the encoder's constant-quality scale; the input's audio track is
copied when the container takes its codec, else re-encoded (AAC, or Opus for webm).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from artfx.errors import ImageError, InputError

log = logging.getLogger("artfx")

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}
GIF_SUFFIX = ".gif"
PHOTO_FPS = Fraction(10)  # a photo sequence's frame rate unless --fps says otherwise
_COPY_AUDIO = {".webm": {"opus", "vorbis"}, ".avi": {"mp3", "aac", "ac3", "pcm_s16le"}}
_ANY_AUDIO = {"aac", "mp3", "opus", "vorbis", "ac3", "alac", "flac", "pcm_s16le"}


@dataclass
class ClipInfo:
    """What is known of a sequence before decoding it."""

    width: int
    height: int
    fps: Fraction
    frames: int | None  # None when the container does not say
    audio: bool = False
    kind: str = "video"  # video, gif or photos


def _av_error(path: Path, exc: Exception) -> ImageError:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return ImageError(f"cannot read the video {path}: {text}")


class VideoSource:
    """A video file, decoded frame by frame (the first video stream)."""

    def __init__(self, path: Path):
        import av

        self.path = path
        try:
            self.container = av.open(str(path))
        except Exception as exc:  # av.error.* (corrupt, truncated, not a video)
            raise _av_error(path, exc) from None
        if not self.container.streams.video:
            self.container.close()
            raise ImageError(f"{path} holds no video frames (no video stream)")
        stream = self.container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.name or ctx.name == "none" or not _decodable(ctx.name):
            self.container.close()
            raise ImageError(f"{path}: its video codec ({stream.codec_tag or 'unknown'}) is not supported")
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = stream.frames or None
        if frames is None and stream.duration and stream.time_base:
            frames = max(1, round(float(stream.duration * stream.time_base) * float(rate)))
        if not ctx.width or not ctx.height:
            self.container.close()
            raise ImageError(f"{path}: the video stream has no picture size (corrupt or unsupported)")
        self.info = ClipInfo(ctx.width, ctx.height, Fraction(rate), frames, bool(self.container.streams.audio))

    def frames(self) -> Iterator[np.ndarray]:
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        try:
            for frame in self.container.decode(stream):
                n += 1
                yield frame.to_ndarray(format="rgb24")
        except ImageError:
            raise
        except Exception as exc:
            if n == 0:
                raise _av_error(self.path, exc) from None
            raise ImageError(f"the video {self.path} is damaged after frame {n}: "
                             f"{' '.join(str(exc).split())}") from None
        if n == 0:
            raise ImageError(f"the video {self.path} has no frames")

    def close(self) -> None:
        self.container.close()


def _decodable(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "r")
        return True
    except Exception:
        return False


class GifSource:
    """An animated GIF, frame by frame (Pillow applies each frame's disposal)."""

    def __init__(self, path: Path):
        from PIL import Image

        self.path = path
        try:
            self.image = Image.open(path)
            self.image.load()
        except Exception as exc:
            raise ImageError(f"cannot read the GIF {path}: {exc}") from None
        n = getattr(self.image, "n_frames", 1)
        duration = self.image.info.get("duration") or 100
        self.info = ClipInfo(self.image.width, self.image.height, Fraction(1000, max(int(duration), 10)), n,
                             kind="gif")

    def frames(self) -> Iterator[np.ndarray]:
        try:
            for i in range(self.info.frames or 1):
                self.image.seek(i)
                yield np.asarray(self.image.convert("RGB"))
        except (OSError, EOFError) as exc:
            raise ImageError(f"the GIF {self.path} is damaged: {exc}") from None

    def close(self) -> None:
        self.image.close()


class PhotoSource:
    """Photos as the frames of one animation, each read by artfx's reader and brought to the first's size."""

    def __init__(self, paths: list[Path], allow_huge: bool = False):
        from artfx.io import read_image

        if not paths:
            raise InputError("no photos to make an animation from")
        self.paths, self.allow_huge = paths, allow_huge
        first = read_image(paths[0], allow_huge=allow_huge).rgb
        self.info = ClipInfo(first.shape[1], first.shape[0], PHOTO_FPS, len(paths), kind="photos")

    def frames(self) -> Iterator[np.ndarray]:
        from artfx.io import read_image, resize_to

        h, w = self.info.height, self.info.width
        for path in self.paths:
            rgb = read_image(path, allow_huge=self.allow_huge).rgb
            if rgb.shape[:2] != (h, w):
                if abs(rgb.shape[1] / rgb.shape[0] - w / h) > 0.01:
                    log.warning("%s is %dx%d, not %dx%d like the first photo: stretched", path, rgb.shape[1],
                                rgb.shape[0], w, h)
                rgb = resize_to(rgb, h, w)
            yield np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)

    def close(self) -> None:
        pass


def is_animated_gif(path: Path) -> bool:
    if path.suffix.lower() != GIF_SUFFIX or not path.is_file():
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1) > 1
    except Exception:
        return False


def open_source(paths: list[Path], allow_huge: bool = False):
    """The frame source for these inputs: one video or animated GIF, or several photos."""
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        return VideoSource(paths[0])
    if len(paths) == 1 and paths[0].suffix.lower() == GIF_SUFFIX:
        return GifSource(paths[0])
    return PhotoSource(paths, allow_huge)


def resample(frames: Iterator[np.ndarray], fps_in: Fraction, fps_out: Fraction) -> Iterator[np.ndarray]:
    """Frames at another rate: each output time takes the input frame shown then (dropped or repeated)."""
    if fps_in == fps_out:
        yield from frames
        return
    j = 0
    for i, frame in enumerate(frames):
        end = Fraction(i + 1) / fps_in
        while Fraction(j) / fps_out < end:
            yield frame
            j += 1


# ---- writers ---------------------------------------------------------------------------------------------------
def crf_for(suffix: str, quality: int) -> int:
    """The encoder's constant-rate factor for a quality of 1-100 (80: x264 CRF 19, VP9 CRF 24)."""
    q = min(max(int(quality), 1), 100)
    if suffix == ".webm":
        return round(60 - 0.45 * (q - 1))
    return round(45 - 0.33 * (q - 1))


class VideoWriter:
    """An H.264/VP9 file written frame by frame at ``fps``, the audio of ``audio_from`` muxed in as it goes."""

    def __init__(self, path: Path, suffix: str, width: int, height: int, fps: Fraction, quality: int,
                 audio_from: Path | None = None, comment: str | None = None):
        import av

        self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even sizes
        self.fps = Fraction(fps).limit_denominator(100000)
        self.out = av.open(str(path), mode="w", format=_FORMAT.get(suffix))
        if comment:
            self.out.metadata["comment"] = comment
        codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
        self.stream = self.out.add_stream(codec, rate=self.fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        self.stream.codec_context.time_base = 1 / self.fps
        crf = str(crf_for(suffix, quality))
        self.stream.options = {"crf": crf, "b": "0"} if codec == "libvpx-vp9" else {"crf": crf, "preset": "medium"}
        self.index = 0
        self.audio_in = self.audio_packets = self.audio_out = None
        self.transcode = False
        if audio_from is not None:
            self._open_audio(audio_from, suffix)

    def _open_audio(self, src: Path, suffix: str) -> None:
        import av

        self.audio_in = av.open(str(src))
        if not self.audio_in.streams.audio:
            self.audio_in.close()
            self.audio_in = None
            return
        a = self.audio_in.streams.audio[0]
        allowed = _COPY_AUDIO.get(suffix, _ANY_AUDIO)
        if a.codec_context.name in allowed:
            self.audio_out = self.out.add_stream_from_template(a)
        else:
            self.transcode = True
            self.audio_out = self.out.add_stream("libopus" if suffix == ".webm" else "aac",
                                                 rate=48000 if suffix == ".webm" else (a.rate or 48000))
        self.audio_packets = self.audio_in.demux(a)
        self._pending = None

    def _mux_audio(self, until: float | None) -> None:
        """Audio packets up to ``until`` seconds (all that are left when None), interleaved with the video."""
        if self.audio_packets is None:
            return
        while True:
            packet = self._pending if self._pending is not None else next(self.audio_packets, None)
            self._pending = None
            if packet is None:
                self.audio_packets = None
                if self.transcode:
                    for p in self.audio_out.encode(None):
                        self.out.mux(p)
                return
            if packet.dts is None:
                continue
            t = float(packet.dts * packet.time_base)
            if until is not None and t > until:
                self._pending = packet
                return
            if self.transcode:
                for frame in packet.decode():
                    frame.pts = None
                    for p in self.audio_out.encode(frame):
                        self.out.mux(p)
            else:
                packet.stream = self.audio_out
                self.out.mux(packet)

    def write(self, frame: np.ndarray) -> None:
        import av

        if frame.shape[:2] != (self.height, self.width):
            frame = frame[: self.height, : self.width]
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

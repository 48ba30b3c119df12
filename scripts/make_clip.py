"""Make test clips whose motion is known: a smooth pan and zoom across a photo, or camera-like footage.

    PYTHONPATH=. .venv/bin/python scripts/make_clip.py samples/tubingen.jpg demo-out/pan.mp4 --frames 12 --width 160
    PYTHONPATH=. .venv/bin/python scripts/make_clip.py photo.png handheld.mp4 --handheld --frames 100 --width 640

Camera-like footage (``--handheld``, and :func:`camera_like` for any frames, as scripts/bench_video.py uses them):
a hand-held pan (a slow pan plus shake: a few sinusoids and a random walk, a little roll), each frame the
average of sub-frame positions over a half-frame shutter (motion blur), then sensor-like noise (shot noise
growing with the signal, read noise, slightly correlated across neighbours and channels as demosaicing leaves
it, fresh every frame) and a low-bitrate H.264 encode (blocks and ringing that change from frame to frame).
"""

from __future__ import annotations

import argparse
import io
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from artfx.io import read_image, resize_to  # noqa: E402
from artfx.video import media  # noqa: E402


def sensor_noise(frame: np.ndarray, rng: np.random.Generator, shot: float = 0.0006, read: float = 0.00005,
                 chroma: float = 0.5) -> np.ndarray:
    """``frame`` (float32 (H, W, 3) in [0, 1]) with sensor-like noise: variance ``shot * x + read`` (x the
    signal), a luminance part and ``chroma`` as much per channel, blurred a little as demosaicing does."""
    import cv2

    h, w = frame.shape[:2]
    sigma = np.sqrt(shot * frame + read).astype(np.float32)
    lum = rng.standard_normal((h, w, 1), dtype=np.float32)
    col = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(chroma)
    noise = (lum + col) / np.float32(np.sqrt(1 + chroma**2))
    noise = cv2.GaussianBlur(noise, (0, 0), 0.6) * np.float32(1.6)  # the blur takes ~0.6 of the amplitude
    return np.clip(frame + sigma * noise, 0, 1).astype(np.float32)


def h264_roundtrip(frames: list[np.ndarray], fps: int = 25, kbps: int = 600) -> list[np.ndarray]:
    """``frames`` (float32 in [0, 1]) through a constant-bitrate H.264 encode (x264 preset medium) and back."""
    import av

    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4")
    s = out.add_stream("libx264", rate=fps)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    s.codec_context.thread_count = 1
    s.bit_rate = kbps * 1000
    s.options = {"preset": "medium", "x264-params": f"mbtree=0:vbv-maxrate={kbps}:vbv-bufsize={kbps}"}
    for i, f in enumerate(frames):
        u8 = np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)
        vf = av.VideoFrame.from_ndarray(u8, format="rgb24")
        vf.pts, vf.time_base = i, Fraction(1, fps)
        for p in s.encode(vf):
            out.mux(p)
    for p in s.encode(None):
        out.mux(p)
    out.close()
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="rgb24").astype(np.float32) / 255 for f in c.decode(video=0)]


def handheld_path(n: int, fps: float, rng: np.random.Generator, pan: float = 1.6, shake: float = 3.0):
    """Camera offsets per time (x px, y px, roll degrees) as a function of t in frames: a pan of ``pan`` px a
    frame, shake of about ``shake`` px (sinusoids at 1-6 Hz with random phases, and a random walk)."""
    freqs = np.array([1.1, 2.3, 3.7, 5.9])
    amp = shake * np.array([0.6, 0.45, 0.3, 0.15])
    phases = rng.uniform(0, 2 * np.pi, (3, len(freqs)))
    walk = np.cumsum(rng.normal(0, 0.25, (n + 2, 2)), axis=0)

    def at(t: float) -> tuple[float, float, float]:
        s = t / fps
        wave = (amp[None] * np.sin(2 * np.pi * freqs[None] * s + phases)).sum(1)
        i = min(int(t), n)
        wk = walk[i] + (walk[i + 1] - walk[i]) * (t - i)
        return pan * t + wave[0] + wk[0], 0.1 * pan * t + wave[1] + wk[1], 0.2 * wave[2] / max(shake, 1e-6)

    return at


def handheld(photo: np.ndarray, n: int, width: int, fps: float = 25, seed: int = 0, shutter: float = 0.5,
             samples: int = 8) -> list[np.ndarray]:
    """``n`` frames (float32, 16:9, ``width`` wide) of a hand-held camera panning over ``photo``, with motion
    blur (the average of ``samples`` positions over ``shutter`` of a frame's time). No noise (see camera_like)."""
    import cv2

    rng = np.random.default_rng(seed)
    h = round(width * 9 / 16) // 2 * 2
    width -= width % 2
    ph, pw = photo.shape[:2]
    scale = 0.62 * pw / width  # source px per output px: the view is 62 % of the photo's width
    at = handheld_path(n, fps, rng)
    x0, y0 = 0.12 * pw, 0.5 * (ph - h * scale)
    src = np.ascontiguousarray(photo, np.float32)
    frames = []
    for i in range(n):
        acc = np.zeros((h, width, 3), np.float32)
        for k in range(samples):
            dx, dy, roll = at(i + shutter * (k + 0.5) / samples)
            c, s = np.cos(np.radians(roll)) * scale, np.sin(np.radians(roll)) * scale
            cx, cy = x0 + dx * scale + width * scale / 2, y0 + dy * scale + h * scale / 2
            # output pixel (u, v) -> source (cx + c (u - w/2) - s (v - h/2), cy + s (u - w/2) + c (v - h/2))
            m = np.array([[c, -s, cx - c * width / 2 + s * h / 2], [s, c, cy - s * width / 2 - c * h / 2]],
                         np.float64)
            acc += cv2.warpAffine(src, m, (width, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT)
        frames.append(acc / samples)
    return frames


def camera_like(frames: list[np.ndarray], seed: int = 0, kbps: int = 600, fps: int = 25,
                shot: float = 0.0006) -> list[np.ndarray]:
    """``frames`` as a camera would deliver them: sensor noise, then a low-bitrate H.264 encode."""
    rng = np.random.default_rng(seed)
    return h264_roundtrip([sensor_noise(f, rng, shot=shot) for f in frames], fps, kbps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--fps", type=int, default=8)
    ap.add_argument("--handheld", action="store_true", help="camera-like: shake, motion blur, noise, low bitrate")
    ap.add_argument("--kbps", type=int, default=600, help="with --handheld: the H.264 bitrate")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rgb = read_image(args.photo).rgb
    h, w = rgb.shape[:2]
    ow, oh = args.width - args.width % 2, round(args.width * 9 / 16) // 2 * 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.handheld:
        frames = camera_like(handheld(rgb, args.frames, ow, args.fps, args.seed), args.seed, args.kbps, args.fps)
    else:
        frames = []
        for i in range(args.frames):
            t = i / max(args.frames - 1, 1)
            crop_w = w * (0.6 - 0.1 * t)  # pan right while zooming in a little
            crop_h = crop_w * oh / ow
            x0, y0 = (w - crop_w) * (0.2 + 0.5 * t), (h - crop_h) * 0.5
            crop = rgb[int(y0): int(y0 + crop_h), int(x0): int(x0 + crop_w)]
            frames.append(resize_to(crop, oh, ow))
    writer = media.VideoWriter(out, out.suffix.lower(), ow, oh, Fraction(args.fps), 90)
    for f in frames:
        writer.write(np.clip(np.rint(f * 255), 0, 255).astype(np.uint8))
    writer.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

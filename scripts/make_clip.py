"""Make a short test clip by panning and zooming across a photo: the true motion is known.

    PYTHONPATH=. .venv/bin/python scripts/make_clip.py samples/tubingen.jpg demo-out/pan.mp4 --frames 12 --width 160
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from artfx.io import read_image, resize_to  # noqa: E402
from artfx.video import media  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--fps", type=int, default=8)
    args = ap.parse_args()
    rgb = read_image(args.photo).rgb
    h, w = rgb.shape[:2]
    ow, oh = args.width - args.width % 2, round(args.width * 9 / 16) // 2 * 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = media.VideoWriter(out, out.suffix.lower(), ow, oh, Fraction(args.fps), 90)
    for i in range(args.frames):
        t = i / max(args.frames - 1, 1)
        crop_w = w * (0.6 - 0.1 * t)  # pan right while zooming in a little
        crop_h = crop_w * oh / ow
        x0, y0 = (w - crop_w) * (0.2 + 0.5 * t), (h - crop_h) * 0.5
        crop = rgb[int(y0): int(y0 + crop_h), int(x0): int(x0 + crop_w)]
        writer.write(np.clip(np.rint(resize_to(crop, oh, ow) * 255), 0, 255).astype(np.uint8))
    writer.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

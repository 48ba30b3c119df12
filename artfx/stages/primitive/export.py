"""Side outputs of the primitive stage: SVG text, JSON, GIF and MP4 animations."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from artfx.colours import to_hex
from artfx.stages.primitive import shapes as sh


def svg(shape_list, background, work_wh: tuple[int, int], out_wh: tuple[int, int]) -> str:
    """An SVG drawing exactly the shapes: working-canvas coordinates in the viewBox, shown at the output size."""
    W, H = work_wh
    Wo, Ho = out_wh
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{Wo}" height="{Ho}" '
        f'viewBox="0 0 {W} {H}" preserveAspectRatio="none">',
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="{to_hex(background)}"/>',
    ]
    lines += [sh.svg_element(p, col) for p, col in shape_list]
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def shapes_json(dicts: list[dict], background, work_wh, out_wh) -> str:
    doc = {
        "width": work_wh[0],
        "height": work_wh[1],
        "output_width": out_wh[0],
        "output_height": out_wh[1],
        "background": to_hex(background),
        "shapes": dicts,
    }
    return json.dumps(doc, indent=1) + "\n"


def gif_writer(frames: list[np.ndarray], duration_ms: int = 80, hold_ms: int = 1500):
    """A writer for ctx.save: an animated GIF of the frames (uint8 RGB), the last one held."""

    def write(path: Path) -> None:
        from PIL import Image

        imgs = [Image.fromarray(f).quantize(colors=255, method=Image.Quantize.MEDIANCUT) for f in frames]
        durations = [duration_ms] * (len(imgs) - 1) + [hold_ms]
        imgs[0].save(path, format="GIF", save_all=True, append_images=imgs[1:], duration=durations, loop=0,
                     optimize=False)

    return write


def mp4_writer(frames: list[np.ndarray], fps: int = 12, hold_s: float = 1.5):
    """A writer for ctx.save: an MP4 (OpenCV, mp4v codec) of the frames, the last one held."""

    def write(path: Path) -> None:
        import cv2

        from artfx.errors import StageError

        h, w = frames[0].shape[:2]
        w2, h2 = w + (w % 2), h + (h % 2)  # codecs want even sizes
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp) / "anim.mp4"  # OpenCV picks the container from the file name
            vw = cv2.VideoWriter(str(tmp_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w2, h2))
            if not vw.isOpened():
                raise StageError("this OpenCV build cannot write MP4 video", hint="use --gif instead")
            try:
                seq = list(frames) + [frames[-1]] * int(fps * hold_s)
                for f in seq:
                    if (w2, h2) != (w, h):
                        f = np.pad(f, ((0, h2 - h), (0, w2 - w), (0, 0)), mode="edge")
                    vw.write(np.ascontiguousarray(f[:, :, ::-1]))
            finally:
                vw.release()
            Path(path).write_bytes(tmp_path.read_bytes())

    return write

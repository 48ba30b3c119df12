"""Regenerate the README's pictures (docs/classical.jpg, docs/primitive.jpg) from samples/ with the real CLI.

    .venv/bin/python scripts/readme_images.py

The style example (docs/style-example.jpg) was made with the style stage at 512 px and 50 iterations per scale;
the ratio grid (docs/style-ratios.jpg) with `artfx sweep`, as the README shows.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
ARTFX = [sys.executable, "-m", "artfx"]


def run(*args: str) -> None:
    subprocess.run([*ARTFX, *args, "--quiet"], check=True, cwd=ROOT)


def strip(items: list[tuple[Path, str]], out: Path, height: int = 240) -> None:
    """Pictures side by side at one height, each with a caption bar."""
    tiles = []
    for path, caption in items:
        im = Image.open(path).convert("RGB")
        im = im.resize((round(im.width * height / im.height), height), Image.LANCZOS)
        tile = Image.new("RGB", (im.width, height + 22), "white")
        tile.paste(im, (0, 0))
        ImageDraw.Draw(tile).text((6, height + 5), caption, fill="black")
        tiles.append(tile)
    canvas = Image.new("RGB", (sum(t.width for t in tiles) + 6 * (len(tiles) - 1), height + 22), "white")
    x = 0
    for t in tiles:
        canvas.paste(t, (x, 0))
        x += t.width + 6
    canvas.save(out, quality=85, optimize=True)


def main() -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        run("pipeline", "quantize:k=8,slic:n=600", "samples/coffee.png", "-o", str(t / "coffee.png"))
        run("quantize", "samples/chelsea.png", "-k", "6", "--dither", "floyd-steinberg", "-o", str(t / "cat.png"))
        run("slic", "samples/astronaut.png", "-n", "300", "--edges", "-o", str(t / "astro.png"))
        strip([(ROOT / "samples/coffee.png", "photo"), (t / "coffee.png", "quantize:k=8,slic:n=600"),
               (t / "cat.png", "quantize -k 6 --dither floyd-steinberg"), (t / "astro.png", "slic -n 300 --edges")],
              docs / "classical.jpg")
        run("primitive", "samples/chelsea.png", "-n", "50", "--shape", "triangle", "-o", str(t / "p50.png"))
        run("primitive", "samples/chelsea.png", "-n", "200", "--shape", "triangle", "-o", str(t / "p200.png"))
        run("primitive", "samples/chelsea.png", "-n", "200", "--shape", "combo", "-o", str(t / "combo.png"))
        strip([(ROOT / "samples/chelsea.png", "photo"), (t / "p50.png", "primitive -n 50"),
               (t / "p200.png", "primitive -n 200"), (t / "combo.png", "primitive -n 200 --shape combo")],
              docs / "primitive.jpg", height=200)


if __name__ == "__main__":
    main()

"""Built-in style images (public-domain paintings shipped in ``artfx/data/styles``, credits in SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

STYLES_DIR = Path(__file__).resolve().parent.parent.parent / "data" / "styles"

BUILTIN = {
    "starry-night": "starry-night.jpg",  # Vincent van Gogh, The Starry Night, 1889
    "great-wave": "great-wave.jpg",  # Katsushika Hokusai, The Great Wave off Kanagawa, c. 1831
    "the-scream": "the-scream.jpg",  # Edvard Munch, The Scream, 1893
    "shipwreck": "shipwreck.jpg",  # J. M. W. Turner, The Shipwreck, c. 1805
    "water-lilies": "water-lilies.jpg",  # Claude Monet, Water Lilies, 1919
}
DEFAULT = "starry-night"


def builtin_names() -> str:
    return ", ".join(BUILTIN)


def resolve(name: str) -> Path:
    """A built-in style name (``starry-night``, also ``starry_night`` or ``Starry Night``) or a file path."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if key.endswith(".jpg") and key[:-4] in BUILTIN and not Path(name).exists():
        key = key[:-4]
    if key in BUILTIN:
        return STYLES_DIR / BUILTIN[key]
    path = Path(name).expanduser()
    if path.is_file():
        return path
    raise ValueError(
        f"style image {name!r} is neither a file nor a built-in style; built-in styles: {builtin_names()}"
    )


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as float32 (H, W, 3) RGB in [0, 1] (EXIF orientation applied, alpha dropped)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
                return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        from artfx.errors import InputError

        raise InputError(f"cannot read image {str(path)!r}: {exc}") from None

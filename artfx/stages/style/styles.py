"""Built-in style images (public-domain paintings shipped in ``artfx/data/styles``, credits in SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

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

"""PNG text chunks: written right after IHDR (where readers look first), read from the chunk list without
decoding any pixels. Recipes live in the :data:`RECIPE_KEY` chunk."""

from __future__ import annotations

import base64
import json
import logging
import struct
import zlib
from typing import Any

from artfx.errors import OutputError

log = logging.getLogger("artfx.io")

RECIPE_KEY = "artfx:recipe"
"""The PNG text chunk holding the JSON recipe (pipeline, parameters, seed, artfx version) of an output."""

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LONG_TEXT = 1024  # PNG text values longer than this (in bytes) are zlib-compressed
# Pillow refuses a text chunk that decompresses to more than ImageFile.SAFEBLOCK (1 MiB): such a PNG could not be
# opened again. Recipes longer than this are stored as base64 of their zlib-compressed JSON, behind PACKED.
PLAIN_LIMIT = 256 << 10
PACKED = "zlib+base64:"
_READ_LIMIT = 1 << 20  # what Pillow reads back (see above)


def recipe_text(recipe: dict[str, Any]) -> str:
    """A recipe as the text stored in its PNG chunk: JSON, or packed JSON when long. Raises OutputError when even
    packed it would be too long for Pillow (and so artfx) to read the PNG back."""
    text = json.dumps(recipe, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode("utf-8")) <= PLAIN_LIMIT:
        return text
    packed = PACKED + base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")
    if len(packed) > _READ_LIMIT:
        raise OutputError(f"the recipe is too long to store ({len(text)} characters, {len(packed)} packed); "
                          "a PNG holding it could not be read back")
    return packed


def recipe_json(text: str) -> str:
    """The JSON of a stored recipe text (the inverse of :func:`recipe_text`'s packing)."""
    if text.startswith(PACKED):
        return _inflate(base64.b64decode(text[len(PACKED):], validate=True)).decode("utf-8")
    return text


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def text_chunks(metadata: dict[str, str]) -> list[bytes]:
    """tEXt (or zTXt when long) for Latin-1 text, iTXt (compressed when long) for anything else."""
    chunks = []
    for key, value in metadata.items():
        try:
            keyword = str(key).encode("latin-1")
        except UnicodeEncodeError:
            keyword = b""
        if not 1 <= len(keyword) <= 79 or b"\0" in keyword or keyword != keyword.strip():
            raise OutputError(f"metadata key {key!r} is not a valid PNG keyword (1 to 79 Latin-1 characters)")
        value = str(value)
        try:
            raw = value.encode("latin-1")
            if len(raw) > _LONG_TEXT:
                chunks.append(chunk(b"zTXt", keyword + b"\0\0" + zlib.compress(raw)))
            else:
                chunks.append(chunk(b"tEXt", keyword + b"\0" + raw))
        except UnicodeEncodeError:
            raw = value.encode("utf-8")
            compressed = len(raw) > _LONG_TEXT
            body = zlib.compress(raw) if compressed else raw
            # keyword, NUL, compression flag, method, empty language tag + NUL, empty translation + NUL, text
            chunks.append(chunk(b"iTXt", keyword + b"\0" + bytes([compressed, 0]) + b"\0\0" + body))
    return chunks


def insert_chunks(png: bytes, chunks: list[bytes]) -> bytes:
    """Put ancillary chunks right after IHDR (before the pixels, where readers look first)."""
    if not chunks:
        return png
    if not png.startswith(SIGNATURE) or png[12:16] != b"IHDR":
        raise OutputError("internal error: the encoder did not produce a PNG")
    end_of_ihdr = 8 + 4 + 4 + struct.unpack(">I", png[8:12])[0] + 4
    return png[:end_of_ihdr] + b"".join(chunks) + png[end_of_ihdr:]


def read_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG, read from its chunk list without decoding any pixels."""
    text: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        payload = data[pos + 8 : pos + 8 + length]
        if len(payload) != length:
            raise ValueError("truncated chunk")
        pos += 12 + length
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        keyword, _, rest = payload.partition(b"\0")
        key = keyword.decode("latin-1")
        try:
            if kind == b"tEXt":
                text[key] = rest.decode("latin-1")
            elif kind == b"zTXt":
                text[key] = _inflate(rest[1:]).decode("latin-1")
            else:
                compressed, rest = rest[0], rest[2:]
                _language, _, rest = rest.partition(b"\0")
                _translated, _, body = rest.partition(b"\0")
                text[key] = (_inflate(body) if compressed else body).decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError) as e:
            log.debug("ignoring a broken %s chunk %r: %s", kind.decode(), key, e)
    return text


def _inflate(data: bytes, limit: int = 64 << 20) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, limit)
    if d.unconsumed_tail:
        raise zlib.error("text chunk too large")
    return out


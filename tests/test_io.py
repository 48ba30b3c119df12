"""artfx.io: every odd file is generated here, in tmp_path, and read back through the real code."""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import subprocess
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from artfx import io as aio
from artfx.errors import ImageError, InputError, OutputError
from artfx.io import (
    RECIPE_KEY,
    Picture,
    atomic_write,
    check_writable,
    encode_image,
    read_image,
    read_recipe,
    resize_long_side,
    resize_to,
    write_image,
)

RNG = np.random.default_rng(20240601)


def u8(img: np.ndarray) -> np.ndarray:
    return np.rint(img * 255).astype(np.int64)


def u16(img: np.ndarray) -> np.ndarray:
    return np.rint(img * 65535).astype(np.int64)


def random_u16(h: int, w: int, c: int) -> np.ndarray:
    """Random 16-bit values, with the extremes and values 8 bits cannot hold (1, 257k + 1, 65534) forced in."""
    arr = RNG.integers(0, 65536, (h, w, c), dtype=np.uint16)
    arr[0, 0, :] = 1
    arr[0, 1, :] = 65534
    arr[0, 2, :] = 257 * 100 + 1
    arr[1, 0, :] = 0
    arr[1, 1, :] = 65535
    return arr


# ==== round trips ==========================================================================================


@pytest.mark.parametrize("with_alpha", [False, True])
def test_png8_round_trip_is_exact_and_keeps_the_recipe(tmp_path, with_alpha):
    values = RNG.integers(0, 256, (9, 13, 4), dtype=np.uint8)
    rgb = values[:, :, :3].astype(np.float32) / 255
    alpha = values[:, :, 3].astype(np.float32) / 255 if with_alpha else None
    recipe = {"pipeline": "quantize:k=8,slic", "seed": 7, "place": "Tübingen", "note": "日本"}
    path = tmp_path / "out.png"
    write_image(path, rgb, alpha=alpha, metadata={RECIPE_KEY: json.dumps(recipe, ensure_ascii=False)})

    pic = read_image(path)
    assert (pic.format, pic.depth, pic.source) == ("PNG", 8, str(path))
    assert pic.rgb.dtype == np.float32 and pic.rgb.shape == (9, 13, 3)
    np.testing.assert_array_equal(u8(pic.rgb), values[:, :, :3])
    if with_alpha:
        np.testing.assert_array_equal(u8(pic.alpha), values[:, :, 3])
    else:
        assert pic.alpha is None
    assert read_recipe(pic) == recipe
    assert read_recipe(path) == recipe
    assert json.loads(Image.open(path).text[RECIPE_KEY]) == recipe  # an independent reader agrees


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_round_trip_is_exact(tmp_path, suffix, with_alpha):
    values = random_u16(6, 11, 4)
    rgb = values[:, :, :3].astype(np.float32) / 65535
    alpha = values[:, :, 3].astype(np.float32) / 65535 if with_alpha else None
    path = tmp_path / f"deep{suffix}"
    write_image(path, rgb, alpha=alpha, depth=16)

    pic = read_image(path)
    assert pic.depth == 16
    np.testing.assert_array_equal(u16(pic.rgb), values[:, :, :3])
    assert u16(pic.rgb)[0, 0, 0] == 1  # 1/65535 survived
    if with_alpha:
        np.testing.assert_array_equal(u16(pic.alpha), values[:, :, 3])
        if suffix == ".tif":  # alpha marked as unassociated, so other readers do not un-premultiply it
            assert Image.open(path).tag_v2.get(338) == (2,)
    else:
        assert pic.alpha is None


def test_recipe_survives_in_16bit_png_short_and_long(tmp_path):
    rgb = random_u16(4, 5, 3).astype(np.float32) / 65535
    long_recipe = {"steps": [{"stage": "style", "weights": list(range(400))}], "by": "Zoë"}
    unicode_recipe = {"text": "日本" * 800}  # iTXt, compressed
    for name, recipe in [("short", {"seed": 1}), ("long", long_recipe), ("unicode", unicode_recipe)]:
        path = tmp_path / f"{name}.png"
        write_image(path, rgb, depth=16, metadata={RECIPE_KEY: json.dumps(recipe, ensure_ascii=False), "x": "y"})
        assert read_image(path).depth == 16
        assert read_recipe(path) == recipe
        assert read_recipe(read_image(path)) == recipe
        assert Image.open(path).text["x"] == "y"


def test_rounding_is_to_nearest_not_truncation(tmp_path):
    base = np.arange(0, 250, 10, dtype=np.float32)
    rgb = np.stack([(base + 0.6) / 255, (base + 0.4) / 255, (base + 0.5001) / 255], axis=-1)[None]
    path = tmp_path / "r.png"
    write_image(path, rgb)
    got = u8(read_image(path).rgb)[0]
    np.testing.assert_array_equal(got[:, 0], base + 1)
    np.testing.assert_array_equal(got[:, 1], base)
    np.testing.assert_array_equal(got[:, 2], base + 1)
    deep = encode_image(np.full((1, 1, 3), 2.6 / 65535, np.float32), depth=16)
    assert u16(read_image(deep).rgb)[0, 0, 0] == 3


def test_other_formats_round_trip(tmp_path):
    values = RNG.integers(0, 256, (8, 10, 4), dtype=np.uint8)
    rgb, alpha = values[:, :, :3] / 255.0, values[:, :, 3] / 255.0
    write_image(tmp_path / "a.tif", rgb, alpha=alpha)
    write_image(tmp_path / "a.webp", rgb, alpha=alpha, quality=100)  # lossless
    write_image(tmp_path / "a.bmp", rgb)
    for name, fmt in [("a.tif", "TIFF"), ("a.webp", "WEBP"), ("a.bmp", "BMP")]:
        pic = read_image(tmp_path / name)
        assert pic.format == fmt and pic.depth == 8
        np.testing.assert_array_equal(u8(pic.rgb), values[:, :, :3])
        if fmt != "BMP":
            np.testing.assert_array_equal(u8(pic.alpha), values[:, :, 3])
    # metadata is ignored (not an error) for formats without text chunks
    write_image(tmp_path / "m.jpg", rgb, metadata={RECIPE_KEY: "{}"})
    assert read_recipe(tmp_path / "m.jpg") is None


def test_stdin_and_stdout(tmp_path, monkeypatch):
    values = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", types.SimpleNamespace(buffer=out))
    write_image("-", values / 255.0, metadata={RECIPE_KEY: '{"a": 1}'})
    data = out.getvalue()
    assert data.startswith(b"\x89PNG")
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))
    pic = read_image("-")
    assert pic.source == "-"
    np.testing.assert_array_equal(u8(pic.rgb), values)
    assert read_recipe(pic) == {"a": 1}
    assert read_image(data).source == "<bytes>"


# ==== odd inputs ===========================================================================================


def _marked(width: int, height: int) -> np.ndarray:
    """Blue picture with a red 16x16 block in its top-left corner."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, :, 2] = 255
    arr[:16, :16] = (255, 0, 0)
    return arr


def _is_red(block: np.ndarray) -> bool:
    mean = block.reshape(-1, 3).mean(axis=0)
    return mean[0] > 0.8 and mean[2] < 0.2


@pytest.mark.parametrize("orientation", [6, 3])
def test_exif_orientation_of_jpeg_moves_pixels(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(_marked(48, 32)).save(path, quality=95, exif=exif)
    pic = read_image(path)
    if orientation == 6:  # turned 90 degrees clockwise for display: top-left goes to top-right
        assert pic.rgb.shape == (48, 32, 3)
        assert _is_red(pic.rgb[2:14, 18:30]) and not _is_red(pic.rgb[2:14, 2:14])
    else:  # 180 degrees: top-left goes to bottom-right
        assert pic.rgb.shape == (32, 48, 3)
        assert _is_red(pic.rgb[18:30, 34:46]) and not _is_red(pic.rgb[2:14, 2:14])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_eight_orientations_match_pillow(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    values = RNG.integers(0, 256, (5, 8, 4), dtype=np.uint8)
    path = tmp_path / "o.png"
    Image.fromarray(values, "RGBA").save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    pic = read_image(path)
    np.testing.assert_array_equal(u8(pic.rgb), expected[:, :, :3])
    np.testing.assert_array_equal(u8(pic.alpha), expected[:, :, 3])


def test_grey_la_bilevel_and_palette(tmp_path):
    grey = RNG.integers(0, 256, (6, 9), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    pic = read_image(tmp_path / "l.png")
    assert pic.alpha is None
    np.testing.assert_array_equal(u8(pic.rgb), np.repeat(grey[:, :, None], 3, axis=2))

    la = RNG.integers(0, 256, (6, 9, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    pic = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(u8(pic.rgb), np.repeat(la[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(u8(pic.alpha), la[:, :, 1])

    bits = RNG.integers(0, 2, (6, 9)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "1.png")
    np.testing.assert_array_equal(read_image(tmp_path / "1.png").rgb[:, :, 1], bits.astype(np.float32))

    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
    index = RNG.integers(0, 4, (6, 9), dtype=np.uint8)
    index[0, :4] = [0, 1, 2, 3]
    expected = np.array(palette, np.int64).reshape(4, 3)[index]
    p = Image.fromarray(index, "P")
    p.putpalette(palette)
    p.save(tmp_path / "p.png")
    p.save(tmp_path / "pt.png", transparency=2)  # palette entry 2 (blue) is transparent
    opaque = read_image(tmp_path / "p.png")
    assert opaque.alpha is None
    np.testing.assert_array_equal(u8(opaque.rgb), expected)
    clear = read_image(tmp_path / "pt.png")
    np.testing.assert_array_equal(u8(clear.rgb), expected)
    np.testing.assert_array_equal(clear.alpha, (index != 2).astype(np.float32))


def _write_png_la16(path, la: np.ndarray) -> None:
    """A 16-bit grey+alpha PNG, built chunk by chunk (neither Pillow nor OpenCV writes one)."""
    h, w = la.shape[:2]
    raw = b"".join(b"\0" + la[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + aio.png.chunk(b"IHDR", ihdr) + aio.png.chunk(b"IDAT", zlib.compress(raw))
        + aio.png.chunk(b"IEND", b"")
    )


def test_16bit_files_from_other_writers_keep_16_bits(tmp_path):
    import cv2

    rgb16 = random_u16(5, 6, 3)
    for suffix in (".png", ".tif"):
        cv2.imwrite(str(tmp_path / f"cv{suffix}"), rgb16[:, :, ::-1])  # OpenCV is BGR
        pic = read_image(tmp_path / f"cv{suffix}")
        assert pic.depth == 16 and pic.alpha is None
        np.testing.assert_array_equal(u16(pic.rgb), rgb16)

    grey16 = random_u16(5, 6, 1)[:, :, 0]
    for suffix in (".png", ".tif"):
        Image.fromarray(grey16).save(tmp_path / f"g{suffix}")
        pic = read_image(tmp_path / f"g{suffix}")
        assert pic.depth == 16
        np.testing.assert_array_equal(u16(pic.rgb), np.repeat(grey16[:, :, None], 3, axis=2))

    la16 = random_u16(5, 6, 2)
    _write_png_la16(tmp_path / "la16.png", la16)
    pic = read_image(tmp_path / "la16.png")
    assert pic.depth == 16
    np.testing.assert_array_equal(u16(pic.rgb), np.repeat(la16[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(u16(pic.alpha), la16[:, :, 1])


CMYK_PATCHES = [  # (C, M, Y, K) -> expected RGB
    ((0, 0, 0, 0), (255, 255, 255)),
    ((255, 0, 0, 0), (0, 255, 255)),
    ((0, 255, 0, 0), (255, 0, 255)),
    ((0, 0, 255, 0), (255, 255, 0)),
    ((0, 0, 0, 255), (0, 0, 0)),
    ((0, 0, 0, 128), (127, 127, 127)),
    ((0, 128, 255, 0), (255, 127, 0)),
]


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_becomes_the_right_rgb(tmp_path, suffix):
    cmyk = np.zeros((16, 16 * len(CMYK_PATCHES), 4), np.uint8)
    for i, (ink, _) in enumerate(CMYK_PATCHES):
        cmyk[:, 16 * i : 16 * (i + 1)] = ink
    path = tmp_path / f"cmyk{suffix}"
    # Pillow writes CMYK JPEGs the Adobe way (inverted values with an APP14 marker), as Photoshop does.
    Image.fromarray(cmyk, "CMYK").save(path, quality=95)
    pic = read_image(path)
    assert pic.rgb.shape == (16, 16 * len(CMYK_PATCHES), 3) and pic.alpha is None
    tolerance = 6 if suffix == ".jpg" else 1
    for i, (_, expected) in enumerate(CMYK_PATCHES):
        got = u8(pic.rgb[4:12, 16 * i + 4 : 16 * i + 12]).reshape(-1, 3).mean(axis=0)
        assert np.abs(got - expected).max() <= tolerance, (i, got, expected)
    if suffix == ".jpg":  # libjpeg through OpenCV, an independent reader, agrees
        import cv2

        other = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.int64)
        assert np.abs(other - u8(pic.rgb)).mean() < 3


# ---- ICC profiles ----------------------------------------------------------------------------------------

PROPHOTO = np.array(  # linear ProPhoto RGB -> XYZ (D50); its columns are the colorants
    [[0.7976749, 0.1351917, 0.0313534], [0.2880402, 0.7118741, 0.0000857], [0.0, 0.0, 0.8252100]]
)
SRGB_D50 = np.array(  # linear sRGB -> XYZ, Bradford-adapted to D50 (as in ICC sRGB profiles)
    [[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]]
)


def _icc_rgb_profile(description: str, matrix: np.ndarray, gamma: float, curve: bytes | None = None) -> bytes:
    """A minimal ICC v2 RGB display profile (matrix + gamma curves), built by hand: ImageCms only creates sRGB,
    LAB and XYZ profiles, none of which is a non-sRGB RGB space."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", int(round(v * 65536)))

    def xyz(v) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15(c) for c in v)

    text = description.encode("ascii") + b"\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + struct.pack(">IIHB", 0, 0, 0, 0) + b"\0" * 67
    if curve is None:
        curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"
    white = matrix.sum(axis=1)
    tags = [(b"desc", desc), (b"wtpt", xyz(white)), (b"rXYZ", xyz(matrix[:, 0])), (b"gXYZ", xyz(matrix[:, 1])),
            (b"bXYZ", xyz(matrix[:, 2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = [], b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table.append(sig + struct.pack(">II", offset + len(body), len(data)))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(table) + body


def _prophoto_to_srgb(rgb: np.ndarray) -> np.ndarray:
    xyz = (rgb**1.8) @ PROPHOTO.T
    lin = np.clip(xyz @ np.linalg.inv(SRGB_D50).T, 0, 1)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


ICC_COLOURS = np.array(
    [[0.5, 0.5, 0.5], [0.6, 0.45, 0.4], [0.35, 0.5, 0.38], [0.3, 0.33, 0.5], [0.8, 0.75, 0.7], [0.2, 0.2, 0.2]]
)


def test_icc_profile_is_converted_to_srgb(tmp_path, monkeypatch):
    icc = _icc_rgb_profile("artfx test ProPhoto-like", PROPHOTO, 1.8)
    values = np.rint(ICC_COLOURS * 255).astype(np.uint8)[None]
    Image.fromarray(values, "RGB").save(tmp_path / "pp.png", icc_profile=icc)
    Image.fromarray(values, "RGB").save(tmp_path / "pp.jpg", icc_profile=icc, quality=100, subsampling=0)
    expected = _prophoto_to_srgb(values / 255.0)[0]
    assert expected.min() > 0.01 and expected.max() < 0.99  # the test colours are inside the sRGB gamut
    for name, tolerance in [("pp.png", 2.5), ("pp.jpg", 4)]:
        got = read_image(tmp_path / name).rgb[0]
        assert np.abs(got - expected).max() * 255 <= tolerance, (name, got * 255, expected * 255)
        # the expected direction: a gamma-1.8 space reads lighter and a wide gamut more saturated in sRGB
        assert got[0, 0] > 0.55
        original = values[0] / 255.0
        assert np.all(np.ptp(got[1:5], axis=1) > np.ptp(original[1:5], axis=1) + 0.03)

    # 16-bit: the same profile, as an iCCP chunk in a PNG OpenCV wrote
    deep = np.rint(ICC_COLOURS * 65535).astype(np.uint16)[None]
    deep[0, 5] = [13107, 13108, 13109]  # neighbours 8 bits cannot tell apart
    (tmp_path / "pp16.png").write_bytes(_deep_png_with_profile(deep, icc))
    pic = read_image(tmp_path / "pp16.png")
    assert pic.depth == 16
    expected16 = _prophoto_to_srgb(deep / 65535.0)[0]
    assert np.abs(pic.rgb[0] - expected16).max() * 255 <= 1.5
    assert pic.rgb[0, 5, 0] < pic.rgb[0, 5, 1] < pic.rgb[0, 5, 2]  # still 16-bit smooth after the conversion

    # a profile LittleCMS must sample (here: the same one, with the exact matrix path turned off)
    monkeypatch.setattr(aio.colour, "_matrix_shaper", lambda icc: None)
    sampled = read_image(tmp_path / "pp16.png").rgb[0]
    assert np.abs(sampled - expected16).max() * 255 <= 3
    assert sampled[5, 0] < sampled[5, 1] < sampled[5, 2]


def _deep_png_with_profile(values: np.ndarray, icc: bytes) -> bytes:
    import cv2

    ok, png = cv2.imencode(".png", values[:, :, ::-1])
    return aio.png.insert_chunks(png.tobytes(), [aio.png.chunk(b"iCCP", b"icc\0\0" + zlib.compress(icc))])


def _srgb_decode(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def test_16bit_profiles_with_parametric_and_table_curves():
    """sRGB in disguise (sRGB primaries, sRGB curve as a 'para' function or a 1024-entry table, another name):
    the exact 16-bit path must give the values back, which exercises the curve and matrix parsing."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", int(round(v * 65536)))

    para = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(
        s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    table = np.rint(_srgb_decode(np.linspace(0, 1, 1024)) * 65535).astype(">u2")
    curv = b"curv\0\0\0\0" + struct.pack(">I", 1024) + table.tobytes()
    values = random_u16(6, 8, 3)
    for curve in (para, curv):
        icc = _icc_rgb_profile("artfx test standard-like RGB", SRGB_D50, 2.2, curve=curve)
        pic = read_image(_deep_png_with_profile(values, icc))
        assert np.abs(u16(pic.rgb) - values).max() <= 80  # about 0.3 of an 8-bit level


def test_srgb_and_broken_profiles_leave_values_alone(tmp_path, caplog):
    values = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(values).save(tmp_path / "srgb.png", icc_profile=srgb)
    Image.fromarray(values).save(tmp_path / "broken.png", icc_profile=b"this is not an ICC profile" * 10)
    with caplog.at_level(logging.WARNING, logger="artfx.io"):
        for name in ("srgb.png", "broken.png"):
            np.testing.assert_array_equal(u8(read_image(tmp_path / name).rgb), values)
    assert not caplog.records


def test_profile_that_does_not_fit_the_image_warns(tmp_path, caplog):
    values = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    icc = _icc_rgb_profile("an RGB profile", PROPHOTO, 1.8)
    Image.fromarray(values, "L").save(tmp_path / "grey.png", icc_profile=icc)
    with caplog.at_level(logging.WARNING, logger="artfx.io"):
        pic = read_image(tmp_path / "grey.png")
    np.testing.assert_array_equal(u8(pic.rgb)[:, :, 0], values)
    assert any("colour profile" in r.getMessage() for r in caplog.records)


# ---- broken inputs ---------------------------------------------------------------------------------------


def test_truncated_files_are_errors(tmp_path):
    values = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(values).save(tmp_path / "full.png")
    Image.fromarray(values).save(tmp_path / "full.jpg", quality=90)
    write_image(tmp_path / "full16.png", values / 255.0, depth=16)
    write_image(tmp_path / "full16.tif", values / 255.0, depth=16)
    for name in ("full.png", "full.jpg", "full16.png", "full16.tif"):
        data = (tmp_path / name).read_bytes()
        read_image(data)  # the whole file is fine
        for cut in (len(data) // 2, len(data) - 40):
            (tmp_path / f"cut-{name}").write_bytes(data[:cut])
            with pytest.raises(ImageError) as err:
                read_image(tmp_path / f"cut-{name}")
            assert err.value.exit_code == 1 and "\n" not in str(err.value)


def test_not_an_image(tmp_path):
    (tmp_path / "noise.png").write_bytes(RNG.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (tmp_path / "notes.png").write_text("this is a text file, not a picture\n")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "header-only.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    for name in ("noise.png", "notes.png", "empty.jpg", "header-only.png"):
        with pytest.raises(ImageError) as err:
            read_image(tmp_path / name)
        assert err.value.exit_code == 1 and name in str(err.value)


def test_missing_file_and_directory_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file") as err:
        read_image(tmp_path / "nope.png")
    assert err.value.exit_code == 2
    with pytest.raises(InputError, match="directory"):
        read_image(tmp_path)
    with pytest.raises(InputError):
        read_recipe(tmp_path / "nope.png")


def test_decompression_bomb_guard_and_override(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("RGB", (20, 20), (10, 200, 30)).save(tmp_path / "big.png")  # 4x the limit: Pillow raises
    Image.new("RGB", (12, 12), (10, 200, 30)).save(tmp_path / "biggish.png")  # 1.44x: Pillow only warns
    for name in ("big.png", "biggish.png"):
        with pytest.raises(ImageError) as err:
            read_image(tmp_path / name)
        assert "--allow-huge" in str(err.value) and err.value.exit_code == 1
        pic = read_image(tmp_path / name, allow_huge=True)
        assert u8(pic.rgb)[0, 0].tolist() == [10, 200, 30]
        assert Image.MAX_IMAGE_PIXELS == 100  # the global guard is back in place
    Image.new("RGB", (10, 10)).save(tmp_path / "small.png")
    assert read_image(tmp_path / "small.png").rgb.shape == (10, 10, 3)


def test_read_recipe_absent_or_invalid(tmp_path):
    rgb = np.zeros((2, 2, 3), np.float32)
    write_image(tmp_path / "plain.png", rgb)
    write_image(tmp_path / "bad.png", rgb, metadata={RECIPE_KEY: "{not json"})
    write_image(tmp_path / "a.jpg", rgb)
    assert read_recipe(tmp_path / "plain.png") is None
    assert read_recipe(tmp_path / "a.jpg") is None
    assert read_recipe(Picture(rgb, None, 8, "PNG", "x", {})) is None
    with pytest.raises(ImageError, match="bad recipe: .*not valid JSON"):
        read_recipe(tmp_path / "bad.png")


# ==== writing ==============================================================================================


def test_jpeg_and_bmp_flatten_alpha_onto_white_with_a_warning(tmp_path, caplog):
    rgb = np.zeros((16, 32, 3), np.float32)
    rgb[..., 0] = 1.0  # red
    alpha = np.ones((16, 32), np.float32)
    alpha[:, :16] = 0.0  # left half fully transparent
    alpha[:, 16:24] = 0.5
    for name in ("flat.jpg", "flat.bmp"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="artfx.io"):
            write_image(tmp_path / name, rgb, alpha=alpha)
        assert any("flattened onto white" in r.getMessage() and r.name == "artfx.io" for r in caplog.records)
        pic = read_image(tmp_path / name)
        assert pic.alpha is None
        assert pic.rgb[2:14, 2:12].min() > 0.95  # white where it was transparent
        assert np.abs(pic.rgb[4:12, 18:22].mean(axis=(0, 1)) - [1, 0.5, 0.5]).max() < 0.05  # half pink
        assert pic.rgb[4:12, 26:30, 0].mean() > 0.95 and pic.rgb[4:12, 26:30, 1].mean() < 0.05  # red stays red


def test_bad_output_requests(tmp_path):
    rgb = np.zeros((4, 4, 3), np.float32)
    for name in ("x.jpg", "x.webp", "x.bmp"):
        with pytest.raises(OutputError, match="PNG or TIFF"):
            write_image(tmp_path / name, rgb, depth=16)
    with pytest.raises(OutputError, match=r"\.png") as err:
        write_image(tmp_path / "x.xcf", rgb)
    assert err.value.exit_code == 2
    with pytest.raises(OutputError, match=r"\.png"):
        write_image(tmp_path / "noext", rgb)
    with pytest.raises(OutputError):
        write_image(tmp_path / "x.png", rgb, depth=12)
    with pytest.raises(OutputError, match="keyword"):
        write_image(tmp_path / "x.png", rgb, metadata={"": "empty key"})
    assert list(tmp_path.iterdir()) == []


def test_few_colours_make_an_indexed_png_and_any_picture_a_gif(tmp_path, caplog):
    palette = RNG.integers(0, 256, (200, 3)).astype(np.uint8)
    labels = RNG.integers(0, 200, (30, 40))
    rgb = palette[labels].astype(np.float32) / 255
    write_image(tmp_path / "q.png", rgb, metadata={RECIPE_KEY: "{}"})
    with Image.open(tmp_path / "q.png") as im:
        assert im.mode == "P" and im.info["artfx:recipe"] == "{}"
        assert np.array_equal(np.asarray(im.convert("RGB")), palette[labels])  # exactly the colours
    write_image(tmp_path / "q.gif", rgb)
    assert np.array_equal(u8(read_image(tmp_path / "q.gif").rgb), palette[labels])
    photo = RNG.random((30, 40, 3)).astype(np.float32)  # 1200 colours: RGB PNG, and a 256-colour GIF
    write_image(tmp_path / "p.png", photo)
    assert Image.open(tmp_path / "p.png").mode == "RGB"
    with caplog.at_level(logging.WARNING, logger="artfx"):
        write_image(tmp_path / "p.gif", photo)
    assert "at most 256 colours" in caplog.text
    assert len(np.unique(u8(read_image(tmp_path / "p.gif").rgb).reshape(-1, 3), axis=0)) <= 256


def test_atomic_write_cleans_up_when_the_writer_fails(tmp_path):
    seen = []

    def writer(exc):
        def write(tmp):
            seen.append(tmp)
            assert tmp.parent == tmp_path and tmp.name.startswith(".") and "artfx-tmp" in tmp.name
            assert tmp.suffix == ".png"
            tmp.write_bytes(b"half a file")
            raise exc

        return write

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.png", writer(RuntimeError("encoder broke")))
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.png", writer(KeyboardInterrupt()))
    assert len(seen) == 2 and list(tmp_path.iterdir()) == []

    (tmp_path / "out.png").write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.png", writer(KeyboardInterrupt()))
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert (tmp_path / "out.png").read_bytes() == b"previous result"


def test_atomic_write_writes_bytes_text_and_callables(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    assert atomic_write(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file
    atomic_write(tmp_path / "b.svg", "<svg>é</svg>")
    assert (tmp_path / "b.svg").read_text(encoding="utf-8") == "<svg>é</svg>"

    import cv2  # an encoder that picks the format from the (temporary) file's suffix

    values = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    atomic_write(tmp_path / "c.png", lambda tmp: cv2.imwrite(str(tmp), values[:, :, ::-1]))
    np.testing.assert_array_equal(u8(read_image(tmp_path / "c.png").rgb), values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.svg", "c.png"]


def test_an_input_is_never_overwritten_without_force(tmp_path):
    values = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    photo = tmp_path / "photo.png"
    Image.fromarray(values).save(photo)
    original = photo.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(photo)
    new = np.zeros((4, 4, 3), np.float32)
    for spelling in (photo, tmp_path / "sub" / ".." / "photo.png", tmp_path / "link.png"):
        with pytest.raises(OutputError, match="would overwrite the input .*pass --force") as err:
            write_image(spelling, new, protected=[photo])
        assert err.value.exit_code == 2
        with pytest.raises(OutputError, match="would overwrite the input"):
            atomic_write(spelling, b"x", protected=[photo])
    assert photo.read_bytes() == original
    write_image(tmp_path / "other.png", new, protected=[photo])  # another name is fine
    write_image(photo, new, protected=[photo], force=True)
    assert read_image(photo).rgb.max() == 0


def test_check_writable(tmp_path):
    check_writable("-", protected=["-"])
    check_writable(tmp_path / "new.png")
    with pytest.raises(OutputError, match="does not exist"):
        check_writable(tmp_path / "missing" / "out.png")
    with pytest.raises(OutputError, match="is a directory"):
        check_writable(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        check_writable(tmp_path / "file" / "out.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_check_writable_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_writable(locked / "out.png")
    finally:
        locked.chmod(0o755)


# ==== resizing =============================================================================================


def test_resize_long_side_never_upscales_and_averages_areas():
    rgb = RNG.random((30, 40, 3), dtype=np.float32)
    alpha = RNG.random((30, 40), dtype=np.float32)
    same, same_alpha = resize_long_side(rgb, 40, alpha)
    assert same is rgb and same_alpha is alpha
    assert resize_long_side(rgb, 4000)[0] is rgb

    small, small_alpha = resize_long_side(rgb, 20, alpha)
    assert small.shape == (15, 20, 3) and small_alpha.shape == (15, 20) and small.dtype == np.float32
    np.testing.assert_allclose(small[0, 0], rgb[:2, :2].mean(axis=(0, 1)), atol=1e-5)
    tall, _ = resize_long_side(rgb.transpose(1, 0, 2), 7)
    assert tall.shape == (7, 5, 3)

    checker = (np.indices((16, 16)).sum(axis=0) % 2).astype(np.float32)
    np.testing.assert_allclose(resize_long_side(np.dstack([checker] * 3), 8)[0], 0.5, atol=1e-6)


def test_resize_to_any_size_stays_in_range():
    step = np.zeros((8, 8, 3), np.float32)
    step[:, 4:] = 1.0  # bicubic overshoots at edges: must be clipped
    up = resize_to(step, 20, 30)
    assert up.shape == (20, 30, 3) and up.dtype == np.float32
    assert up.min() >= 0 and up.max() <= 1 and up[:, 0].max() == 0 and up[:, -1].min() == 1
    down = resize_to(step[:, :, 0], 4, 4)
    assert down.shape == (4, 4)
    np.testing.assert_allclose(down, np.repeat([[0, 0, 1, 1]], 4, axis=0), atol=1e-6)
    assert resize_to(step, 8, 8) is not step


def test_cielab_tiff_becomes_srgb(tmp_path):
    lab = np.zeros((4, 12, 3), np.uint8)
    lab[:, :4] = (255, 0, 0)  # L* 100: white (TIFF CIELab stores a* and b* as signed bytes)
    lab[:, 4:8] = (128, 0, 0)  # L* 50: sRGB grey 119
    lab[:, 8:] = (136, 80, 67)  # L* 53, a* 80, b* 67: close to sRGB red
    Image.fromarray(lab, "LAB").save(tmp_path / "lab.tif")
    got = u8(read_image(tmp_path / "lab.tif").rgb)[0, ::4]
    assert np.abs(got - [[255, 255, 255], [119, 119, 119], [255, 0, 0]]).max() <= 12


def test_importing_artfx_io_stays_cheap():
    import subprocess

    code = "import sys, artfx.io; print(sorted(m for m in ('cv2', 'tifffile', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"


# ---- odd but real files (issue 10, item 11) ------------------------------------------------------------------
def _tiff_bytes(data: np.ndarray, **kw) -> bytes:
    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(out, data, **kw)
    return out.getvalue()


@pytest.mark.parametrize("layout", [{}, {"tile": (16, 16)}, {"planarconfig": "separate"},
                                    {"planarconfig": "separate", "tile": (16, 16)}])
def test_16bit_tiffs_in_every_layout_with_premultiplied_alpha(layout):
    rgb = random_u16(20, 30, 3)
    alpha = np.maximum(random_u16(20, 30, 1)[..., 0], 1)
    planar = layout.get("planarconfig") == "separate"

    def arrange(a):
        return np.moveaxis(a, 2, 0) if planar else a

    plain = read_image(_tiff_bytes(arrange(rgb), photometric="rgb", **layout))
    assert plain.depth == 16 and np.abs(plain.rgb - rgb / 65535).max() < 1e-6
    straight = read_image(_tiff_bytes(arrange(np.dstack([rgb, alpha])), photometric="rgb",
                                      extrasamples=["unassalpha"], **layout))
    assert np.abs(straight.rgb - rgb / 65535).max() < 1e-6 and np.abs(straight.alpha - alpha / 65535).max() < 1e-6
    premultiplied = np.rint(rgb * (alpha[..., None] / 65535)).astype(np.uint16)
    assoc = read_image(_tiff_bytes(arrange(np.dstack([premultiplied, alpha])), photometric="rgb",
                                   extrasamples=["assocalpha"], **layout))
    expected = np.clip(premultiplied / alpha[..., None], 0, 1)  # the colours before premultiplication
    assert np.abs(assoc.rgb - expected).max() < 1e-6
    assert np.abs(assoc.alpha - alpha / 65535).max() < 1e-6


def test_a_16bit_grey_png_keeps_its_transparent_value(tmp_path):
    grey = random_u16(6, 7, 1)[..., 0]
    grey[grey == 4321] = 4320
    grey[1, 2] = grey[4, 5] = 4321
    raw = b"".join(b"\0" + grey[y].astype(">u2").tobytes() for y in range(6))
    data = (b"\x89PNG\r\n\x1a\n" + aio.png.chunk(b"IHDR", struct.pack(">IIBBBBB", 7, 6, 16, 0, 0, 0, 0))
            + aio.png.chunk(b"tRNS", struct.pack(">H", 4321)) + aio.png.chunk(b"IDAT", zlib.compress(raw))
            + aio.png.chunk(b"IEND", b""))
    pic = read_image(data)
    assert pic.depth == 16 and pic.alpha is not None
    assert sorted(zip(*np.nonzero(pic.alpha == 0))) == [(1, 2), (4, 5)] and pic.alpha.sum() == 6 * 7 - 2


def test_a_damaged_tiff_gives_one_line_and_no_libtiff_noise(tmp_path):
    """libtiff prints its warnings on file descriptor 2 itself; the reader must keep them from the user."""
    good = _tiff_bytes(RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8), photometric="rgb", compression="zlib")
    damaged = good[:-200]  # the end of the strip is missing
    path = tmp_path / "damaged.tif"
    path.write_bytes(damaged)
    code = ("import sys; from artfx.io import read_image\n"
            "try:\n    read_image(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60)
    assert r.stderr.decode() == ""
    assert r.stdout.decode().startswith("ImageError") and "damaged.tif" in r.stdout.decode()


# ---- odd files, again (issue 20, item 9) -------------------------------------------------------------------------
DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("layout", [{}, {"compression": "zlib"}, {"planarconfig": "separate", "tile": (16, 16)}])
def test_a_16bit_cmyk_tiff_reads_as_its_inks_with_no_invented_transparency(layout):
    """Like Pillow's tiff_strip_cmyk_16l_jpeg.tif: 16-bit CMYK, which was read as RGB + alpha (C, M, Y as red,
    green and blue, K as transparency)."""
    cmyk = np.zeros((16, 16 * len(CMYK_PATCHES), 4), np.uint16)
    for i, (ink, _) in enumerate(CMYK_PATCHES):
        cmyk[:, 16 * i : 16 * (i + 1)] = np.array(ink) * 257
    planar = layout.get("planarconfig") == "separate"

    def arrange(a):
        return np.moveaxis(a, 2, 0) if planar else a

    def check(pic):
        assert pic.depth == 16 and pic.rgb.shape == (16, 16 * len(CMYK_PATCHES), 3)
        for i, (_, expected) in enumerate(CMYK_PATCHES):
            got = u8(pic.rgb[4:12, 16 * i + 4 : 16 * i + 12]).reshape(-1, 3).mean(axis=0)
            assert np.abs(got - expected).max() <= 1, (i, got, expected)

    pic = read_image(_tiff_bytes(arrange(cmyk), photometric="separated", **layout))
    check(pic)
    assert pic.alpha is None


def test_a_16bit_min_is_white_tiff_is_not_read_inverted():
    grey = random_u16(10, 12, 1)[..., 0]
    pic = read_image(_tiff_bytes(grey, photometric="miniswhite"))
    assert pic.depth == 16 and np.abs(pic.rgb[..., 0] - (1 - grey / 65535)).max() < 1e-6


@pytest.mark.parametrize("name", ["pillow-crash-4f085cc12ece8cde18758d42608bed6a2a2cfb1c.tif",
                                  "pillow-crash-63b1dffefc8c075ddc606c0a2f5fdc15ece78863.tif"])
def test_pillows_fuzzer_tiffs_give_artfx_s_one_line_and_no_pillow_warnings(tmp_path, name):
    from conftest import run_cli

    r = run_cli("quantize", str(DATA / name), "-k", "3", "-o", str(tmp_path / "o.png"))
    lines = r.stderr.decode().splitlines()
    assert r.returncode == 1 and lines == [f"artfx: error: {DATA / name}: corrupt or truncated image "
                                           "(decoder error -2)"], lines
    r = run_cli("quantize", str(DATA / name), "-k", "3", "-o", str(tmp_path / "o.png"), "--debug")
    assert "Pillow said: Tag data larger than file" in r.stderr.decode()  # still there for whoever asks

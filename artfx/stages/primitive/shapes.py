"""The shape types: names and codes, parameter names, plain-dict and SVG forms (no numba here).

Geometry (random init, mutation, outline) lives in ``geometry.py`` as numba kernels; a shape travels as a float
vector ``[code, params...]`` in working-canvas pixels.
"""

from __future__ import annotations

import math

import numpy as np

from artfx.colours import to_hex

KINDS = ("triangle", "rectangle", "rotated-rectangle", "ellipse", "rotated-ellipse", "circle", "polygon", "bezier")
COMBO = "combo"
SHAPE_NAMES = KINDS + (COMBO,)
CODE = {name: i for i, name in enumerate(KINDS)}
CODE[COMBO] = -1

PARAMS = {
    "triangle": ("x1", "y1", "x2", "y2", "x3", "y3"),
    "rectangle": ("x1", "y1", "x2", "y2"),
    "rotated-rectangle": ("cx", "cy", "hw", "hh", "angle"),
    "ellipse": ("cx", "cy", "rx", "ry"),
    "rotated-ellipse": ("cx", "cy", "rx", "ry", "angle"),
    "circle": ("cx", "cy", "r"),
    "polygon": ("x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4"),
    "bezier": ("x1", "y1", "x2", "y2", "x3", "y3", "width"),
}
BEZIER_SEGMENTS = 8  # equal to geometry.BEZIER_SEGMENTS (kept here so this module needs no numba)


def to_dict(p: np.ndarray, col: np.ndarray) -> dict:
    """A shape as a plain dict: type, its named parameters (working-canvas pixels, angles in degrees), colour, alpha."""
    name = KINDS[int(p[0])]
    d: dict = {"type": name}
    for i, key in enumerate(PARAMS[name]):
        v = float(p[1 + i])
        d[key] = round(math.degrees(v), 6) if key == "angle" else v
    d["color"] = to_hex(col)
    d["alpha"] = round(float(col[3]), 6)
    return d


def from_dict(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``to_dict``: (shape vector, [r, g, b, a])."""
    name = d["type"]
    p = np.zeros(10)
    p[0] = CODE[name]
    for i, key in enumerate(PARAMS[name]):
        v = float(d[key])
        p[1 + i] = math.radians(v) if key == "angle" else v
    h = d["color"].lstrip("#")
    col = np.array([int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255, float(d["alpha"])])
    return p, col


def _f(v: float) -> str:
    return f"{v:.4f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _points(xy) -> str:
    return " ".join(f"{_f(x)},{_f(y)}" for x, y in xy)


def bezier_quads(p: np.ndarray) -> list[list[tuple[float, float]]]:
    """The quads a Bezier stroke is drawn as, read from geometry.outline itself so the SVG and the rasteriser
    cannot disagree (geometry is imported here, at export time, to keep this module free of numba)."""
    from artfx.stages.primitive import geometry

    ol = np.zeros(geometry.OL)
    geometry.outline(np.asarray(p, dtype=np.float64), ol)
    n = int(ol[1])
    return [[(float(ol[2 + 8 * i + 2 * j]), float(ol[3 + 8 * i + 2 * j])) for j in range(4)] for i in range(n)]


def svg_element(p: np.ndarray, col: np.ndarray) -> str:
    """One SVG element drawing exactly the shape the rasteriser draws (working-canvas coordinates)."""
    name = KINDS[int(p[0])]
    paint = f'fill="{to_hex(col)}" fill-opacity="{_f(round(float(col[3]), 4))}"'
    if name == "triangle":
        return f'<polygon points="{_points([(p[1], p[2]), (p[3], p[4]), (p[5], p[6])])}" {paint}/>'
    if name == "polygon":
        return f'<polygon points="{_points([(p[1 + 2 * i], p[2 + 2 * i]) for i in range(4)])}" {paint}/>'
    if name == "rectangle":
        x0, x1 = sorted((p[1], p[3]))
        y0, y1 = sorted((p[2], p[4]))
        return f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(x1 - x0)}" height="{_f(y1 - y0)}" {paint}/>'
    if name == "rotated-rectangle":
        c, s = math.cos(p[5]), math.sin(p[5])
        pts = []
        for u, v in ((-p[3], -p[4]), (p[3], -p[4]), (p[3], p[4]), (-p[3], p[4])):
            pts.append((p[1] + u * c - v * s, p[2] + u * s + v * c))
        return f'<polygon points="{_points(pts)}" {paint}/>'
    if name == "ellipse":
        return f'<ellipse cx="{_f(p[1])}" cy="{_f(p[2])}" rx="{_f(p[3])}" ry="{_f(p[4])}" {paint}/>'
    if name == "rotated-ellipse":
        return (f'<ellipse cx="{_f(p[1])}" cy="{_f(p[2])}" rx="{_f(p[3])}" ry="{_f(p[4])}" '
                f'transform="rotate({_f(math.degrees(p[5]))} {_f(p[1])} {_f(p[2])})" {paint}/>')
    if name == "circle":
        return f'<circle cx="{_f(p[1])}" cy="{_f(p[2])}" r="{_f(p[3])}" {paint}/>'
    # bezier: the union of its quads (same winding, nonzero fill), exactly what the rasteriser covers
    d = " ".join(f"M{_points(q[:1])} L{_points(q[1:])} Z" for q in bezier_quads(p))
    return f'<path d="{d}" fill-rule="nonzero" {paint}/>'

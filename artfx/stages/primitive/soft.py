"""The differentiable coverage model: artfx's anti-aliased coverage with edges softened over a width ``sigma``.

The exact model (``kernels``) cuts each pixel row by ``SUB`` sub-scanlines; on each, a shape is a set of exact
intervals and a pixel's coverage is the mean length of those intervals inside it. The soft model keeps all of that
and only softens the interval ends: an end at ``x_e`` becomes a linear ramp of half-width ``h = sigma / 2 / |n_x|``
(a ramp of width ``sigma`` in signed distance from the edge, seen along the scanline; capped at ``HMAX * sigma``), whose
integral over each pixel is closed-form. A single-quad shape (triangle, rectangles, polygon) also fades in over
``sigma`` above its top and below its bottom (so horizontal edges get a gradient too); an ellipse is smooth
already. A union (the quads of a Bezier stroke) is taken on each scanline as disjoint pieces: intervals sorted by
their start, each clipped by the running maximum of the previous ends. As ``sigma`` goes to 0 the model becomes
the exact one, so the optimum it finds is one the exact renderer draws.

Everything here is plain PyTorch (dense: shapes x sub-scanlines x pixels), on any device; it is the reference
implementation and the GPU path. ``adjoint`` holds the same model as numba kernels with a hand-written backward
pass over each shape's own rows, which is what the CPU uses. The ramp widths are treated as constants by the
gradient (they follow the geometry but are not differentiated), in both implementations alike.
"""

from __future__ import annotations

from artfx.stages.primitive import geometry as g
from artfx.stages.primitive import kernels as k

HMAX = 4.0  # cap on a ramp's half-width along the scanline, in units of sigma (near-horizontal edges)
EPS_DISC = 1e-12  # an ellipse's discriminant is floored at this once positive (a finite gradient at its tips)
FAR = -1e6  # where an empty interval sits: far left of the canvas, zero length


def outlines(P):
    """Outlines ``(N, OL)`` of shape vectors ``P`` ``(N, NP)`` (torch), differentiable: ``geometry.outline``."""
    import torch

    N = P.shape[0]
    kind = P[:, 0].round().long()
    ol = torch.zeros((N, g.OL), dtype=P.dtype, device=P.device)
    rows = []
    parts = []

    def put(mask, value):
        idx = torch.nonzero(mask).flatten()
        if len(idx):
            rows.append(idx)
            parts.append(value(P[idx]))

    def quad(xy):  # (n, 8) vertices -> outline rows
        n = xy.shape[0]
        z = torch.zeros((n, 1), dtype=P.dtype, device=P.device)
        return torch.cat([z, z + 1.0, xy, torch.zeros((n, g.OL - 10), dtype=P.dtype, device=P.device)], dim=1)

    def ellipse(cx, cy, rx, ry, th):
        c, s = torch.cos(th), torch.sin(th)
        ix, iy = 1.0 / (rx * rx), 1.0 / (ry * ry)
        cols = [torch.ones_like(cx), cx, cy, c * c * ix + s * s * iy, c * s * (ix - iy), s * s * ix + c * c * iy]
        body = torch.stack(cols, dim=1)
        return torch.cat([body, torch.zeros((cx.shape[0], g.OL - 6), dtype=P.dtype, device=P.device)], dim=1)

    put(kind == g.TRIANGLE, lambda p: quad(torch.cat([p[:, 1:7], p[:, 5:7]], dim=1)))
    put(kind == g.POLYGON, lambda p: quad(p[:, 1:9]))

    def rect(p):
        x0, x1 = torch.minimum(p[:, 1], p[:, 3]), torch.maximum(p[:, 1], p[:, 3])
        y0, y1 = torch.minimum(p[:, 2], p[:, 4]), torch.maximum(p[:, 2], p[:, 4])
        return quad(torch.stack([x0, y0, x1, y0, x1, y1, x0, y1], dim=1))

    put(kind == g.RECTANGLE, rect)

    def rot_rect(p):
        c, s = torch.cos(p[:, 5]), torch.sin(p[:, 5])
        pts = []
        for i in range(4):
            u = p[:, 3] if i in (1, 2) else -p[:, 3]
            v = p[:, 4] if i >= 2 else -p[:, 4]
            pts += [p[:, 1] + u * c - v * s, p[:, 2] + u * s + v * c]
        return quad(torch.stack(pts, dim=1))

    put(kind == g.ROT_RECT, rot_rect)
    put(kind == g.ELLIPSE, lambda p: ellipse(p[:, 1], p[:, 2], p[:, 3], p[:, 4], torch.zeros_like(p[:, 1])))
    put(kind == g.ROT_ELLIPSE, lambda p: ellipse(p[:, 1], p[:, 2], p[:, 3], p[:, 4], p[:, 5]))
    put(kind == g.CIRCLE, lambda p: ellipse(p[:, 1], p[:, 2], p[:, 3], p[:, 3], torch.zeros_like(p[:, 1])))
    put(kind == g.BEZIER, _bezier)
    if rows:
        ol = ol.index_put((torch.cat(rows),), torch.cat(parts))
    return ol


def _bezier(p):
    """A quadratic stroke as BEZIER_SEGMENTS butt-ended quads (as ``geometry.outline``)."""
    import torch

    n = p.shape[0]
    hw = 0.5 * p[:, 7]
    px, py = p[:, 1], p[:, 2]
    cols = [torch.zeros_like(px), torch.full_like(px, float(g.BEZIER_SEGMENTS))]
    for i in range(g.BEZIER_SEGMENTS):
        t = (i + 1) / g.BEZIER_SEGMENTS
        u = 1.0 - t
        qx = u * u * p[:, 1] + 2 * u * t * p[:, 3] + t * t * p[:, 5]
        qy = u * u * p[:, 2] + 2 * u * t * p[:, 4] + t * t * p[:, 6]
        dx, dy = qx - px, qy - py
        ln2 = dx * dx + dy * dy
        ok = ln2 > 1e-18
        ln = torch.sqrt(torch.where(ok, ln2, torch.ones_like(ln2)))
        nx = torch.where(ok, -dy / ln * hw, torch.zeros_like(ln))
        ny = torch.where(ok, dx / ln * hw, torch.zeros_like(ln))
        cols += [px + nx, py + ny, qx + nx, qy + ny, qx - nx, qy - ny, px - nx, py - ny]
        px, py = qx, qy
    return torch.stack(cols, dim=1).reshape(n, g.OL)


def _ramp_area(t, h):
    """Integral from -inf to t of a ramp rising from 0 at -h to 1 at +h (h = 0: max(t, 0))."""
    import torch

    hs = torch.clamp(h, min=1e-12)
    quad = (t + h) ** 2 / (4.0 * hs)
    return torch.where(t >= h, t, torch.where(t <= -h, torch.zeros_like(t), quad))


def _line_ys(H, dtype, device):
    import torch

    ys = torch.arange(H, dtype=dtype, device=device)[:, None] + (torch.arange(k.SUB, dtype=dtype,
                                                                              device=device) + 0.5) / k.SUB
    return ys.reshape(-1)  # (H * SUB,), row-major: row y's sub-scanlines together


def _quad_intervals(ol, ys, sigma, single, hol):
    """Intervals (lo, hi, hl, hr), each (n, L, Q), and line weights (n, L) of quad outlines on lines ys; the ramp
    widths are read from ``hol`` (the same outlines, or fixed ones)."""
    import torch

    n = ol.shape[0]
    Q = int(ol[0, 1].item()) if n else 1
    X = ol[:, 2 : 2 + 8 * Q].reshape(n, Q, 4, 2)[..., 0]
    Y = ol[:, 2 : 2 + 8 * Q].reshape(n, Q, 4, 2)[..., 1]
    x0, y0 = X, Y
    x1, y1 = X.roll(-1, dims=-1), Y.roll(-1, dims=-1)
    dy = y1 - y0
    dx = x1 - x0
    flat = dy == 0
    dys = torch.where(flat, torch.ones_like(dy), dy)
    with torch.no_grad():  # ramp half-widths along the scanline: constants for the gradient
        hX = hol[:, 2 : 2 + 8 * Q].reshape(n, Q, 4, 2)[..., 0]
        hY = hol[:, 2 : 2 + 8 * Q].reshape(n, Q, 4, 2)[..., 1]
        hdx, hdy = hX.roll(-1, dims=-1) - hX, hY.roll(-1, dims=-1) - hY
        hflat = hdy == 0
        length = torch.sqrt(hdx * hdx + hdy * hdy)
        hdys = torch.where(hflat, torch.ones_like(hdy), hdy).abs()
        h = torch.where(hflat, torch.full_like(hdy, HMAX * sigma),
                        torch.clamp(0.5 * sigma * length / hdys, max=HMAX * sigma))
    v = ys[None, :, None, None]  # (1, L, 1, 1)
    yt = Y.amin(dim=-1)  # (n, Q)
    yb = Y.amax(dim=-1)
    if single:
        vc = torch.minimum(torch.maximum(v, yt[:, None, :, None]), yb[:, None, :, None])
        if sigma > 0:
            top = torch.clamp((ys[None, :] - yt[:, :1]) / sigma + 0.5, 0.0, 1.0)
            bot = torch.clamp((yb[:, :1] - ys[None, :]) / sigma + 0.5, 0.0, 1.0)
            weight = top * bot
        else:
            weight = ((ys[None, :] >= yt[:, :1]) & (ys[None, :] <= yb[:, :1])).to(ol.dtype)
    else:
        vc = v.expand(n, ys.shape[0], Q, 1)
        weight = torch.ones((n, ys.shape[0]), dtype=ol.dtype, device=ol.device)
    y0e, y1e = y0[:, None], y1[:, None]
    lo_y, hi_y = torch.minimum(y0e, y1e), torch.maximum(y0e, y1e)
    cross = (~flat[:, None]) & (vc >= lo_y) & (vc <= hi_y)  # (n, L, Q, 4)
    x = x0[:, None] + (vc - y0e) * dx[:, None] / dys[:, None]
    inf = torch.full_like(x, float("inf"))
    lo, ilo = torch.where(cross, x, inf).min(dim=-1)
    hi, ihi = torch.where(cross, x, -inf).max(dim=-1)
    hb = h[:, None].expand_as(x)
    hl = torch.gather(hb, -1, ilo[..., None])[..., 0]
    hr = torch.gather(hb, -1, ihi[..., None])[..., 0]
    # a point (a line through a vertex, or clamped to one): one ramp width for both ends, whichever edges rounding
    # picked, so that it adds nothing
    point = (hi - lo).detach() <= 1e-9 * (1.0 + lo.detach().abs())
    hm = torch.maximum(hl, hr)
    hl, hr = torch.where(point, hm, hl), torch.where(point, hm, hr)
    empty = ~cross.any(dim=-1)
    if not single:  # a union's quads meet a line only within their own height
        empty = empty | (v[..., 0] < yt[:, None]) | (v[..., 0] > yb[:, None])
    lo = torch.where(empty, torch.full_like(lo, FAR), lo)
    hi = torch.where(empty, torch.full_like(hi, FAR), hi)
    return lo, hi, hl, hr, weight


def _ellipse_parts(ol, ys):
    import torch

    cx, cy, a, b, c = (ol[:, i, None] for i in range(1, 6))
    d = ys[None, :] - cy
    disc = b * b * d * d - a * (c * d * d - 1.0)
    ok = (disc > 0) & (a > 0)
    sq = torch.sqrt(torch.where(ok, torch.clamp(disc, min=EPS_DISC), torch.ones_like(disc)))
    a_s = torch.where(a > 0, a, torch.ones_like(a))
    return cx, a, b, c, d, ok, sq, a_s


def _ellipse_intervals(ol, ys, sigma, hol):
    import torch

    cx, a, b, c, d, ok, sq, a_s = _ellipse_parts(ol, ys)
    lo = torch.where(ok, cx + (-b * d - sq) / a_s, torch.full_like(d, FAR))
    hi = torch.where(ok, cx + (-b * d + sq) / a_s, torch.full_like(d, FAR))
    with torch.no_grad():  # ramp half-widths from the slope of each end: constants for the gradient
        _, a, b, c, d, _, sq, a_s = _ellipse_parts(hol, ys)
        lean = d * (b * b - a * c) / sq
        sl = (-b - lean) / a_s  # dx/dy of each end
        sr = (-b + lean) / a_s
        hl = torch.clamp(0.5 * sigma * torch.sqrt(1.0 + sl * sl), max=HMAX * sigma)
        hr = torch.clamp(0.5 * sigma * torch.sqrt(1.0 + sr * sr), max=HMAX * sigma)
    one = torch.ones_like(d)
    return lo[..., None], hi[..., None], hl[..., None], hr[..., None], one


def _pieces(lo, hi, hl, hr):
    """Disjoint pieces of a union of intervals along the last axis (sorted by start, clipped by the running end)."""
    import torch

    if lo.shape[-1] == 1:
        return lo, hi, hl, hr
    order = torch.sort(lo.detach(), dim=-1, stable=True).indices
    lo, hi, hl, hr = (torch.gather(t, -1, order) for t in (lo, hi, hl, hr))
    M, iM = torch.cummax(hi, dim=-1)
    hM = torch.gather(hr, -1, iM)
    far = torch.full_like(M[..., :1], FAR)
    Mp = torch.cat([far, M[..., :-1]], dim=-1)
    hMp = torch.cat([torch.zeros_like(far), hM[..., :-1]], dim=-1)
    lo2 = torch.maximum(lo, Mp)
    hl2 = torch.where(lo >= Mp, hl, hMp)
    hi2 = torch.maximum(hi, Mp)
    hr2 = torch.where(hi >= Mp, hr, hMp)
    return lo2, hi2, hl2, hr2


def coverage(ol, W: int, H: int, sigma: float, h_ol=None):
    """Soft coverage ``(N, H, W)`` of outlines ``ol`` ``(N, OL)`` (all one family: quads with the same quad count,
    or ellipses); ``sigma`` the edge width in px (0: the exact model). The ramp widths follow ``h_ol`` if given
    (fixed outlines: the function whose gradient is computed), else ``ol`` itself."""
    import torch

    ys = _line_ys(H, ol.dtype, ol.device)
    n = ol.shape[0]
    if n == 0:
        return torch.zeros((0, H, W), dtype=ol.dtype, device=ol.device)
    hol = (ol if h_ol is None else h_ol).detach()
    if ol[0, 0].item() == 1.0:
        lo, hi, hl, hr, weight = _ellipse_intervals(ol, ys, sigma, hol)
    else:
        lo, hi, hl, hr, weight = _quad_intervals(ol, ys, sigma, int(ol[0, 1].item()) == 1, hol)
    lo, hi, hl, hr = _pieces(lo, hi, hl, hr)
    xs = torch.arange(W, dtype=ol.dtype, device=ol.device)
    # (n, L, Q, W)
    lo_, hi_, hl_, hr_ = (t[..., None] for t in (lo, hi, hl, hr))
    area = (_ramp_area(xs + 1.0 - lo_, hl_) - _ramp_area(xs - lo_, hl_)
            + _ramp_area(hi_ - xs, hr_) - _ramp_area(hi_ - xs - 1.0, hr_) - 1.0)
    line = area.sum(dim=2) * weight[..., None]  # (n, L, W)
    cov = line.reshape(n, H, k.SUB, W).mean(dim=2)
    return torch.clamp(cov, 0.0, 1.0)


def families(ol_np):
    """Group shape indices by outline family (ellipses; quads by quad count): lists of index arrays."""
    import numpy as np

    key = np.where(ol_np[:, 0] == 1.0, -1, ol_np[:, 1].astype(np.int64))
    return [np.nonzero(key == v)[0] for v in np.unique(key)]


def coverage_all(ol, W: int, H: int, sigma: float, groups=None, h_ol=None):
    """Soft coverage ``(N, H, W)`` of outlines of any families (``groups`` from ``families``)."""
    import torch

    if groups is None:
        groups = families(ol.detach().cpu().numpy())
    cov = torch.zeros((ol.shape[0], H, W), dtype=ol.dtype, device=ol.device)
    for idx in groups:
        it = torch.as_tensor(idx, device=ol.device)
        cov = cov.index_put((it,), coverage(ol[it], W, H, sigma, None if h_ol is None else h_ol[it]))
    return cov


def render(ol, cols, alphas, background, W: int, H: int, sigma: float, groups=None, h_ol=None):
    """The picture ``(H, W, 3)`` of the outlines composited in order over ``background`` (3,)."""
    cov = coverage_all(ol, W, H, sigma, groups, h_ol)
    canvas = background.reshape(1, 1, 3).expand(H, W, 3)
    for i in range(ol.shape[0]):
        w = (alphas[i] * cov[i])[..., None]
        canvas = canvas + w * (cols[i] - canvas)
    return canvas


def sse(ol, cols, alphas, background, target, sigma: float, groups=None, h_ol=None):
    """Sum of squared errors of the soft render against ``target`` ``(H, W, 3)``."""
    H, W = target.shape[:2]
    return ((render(ol, cols, alphas, background, W, H, sigma, groups, h_ol) - target) ** 2).sum()

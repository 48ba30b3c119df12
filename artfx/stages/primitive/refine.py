"""Joint refinement: every shape's geometry, colour and opacity optimised together by gradient descent.

The greedy search fixes each shape the moment it is placed, although every later shape changes what the earlier
ones should have been. Here all of them move at once: Adam on the squared error of the soft render (``soft``: the
exact coverage model with edges softened over ``sigma`` px, shrinking towards the exact model as the steps go).
The gradient comes from ``adjoint`` (numba kernels with a hand-written backward pass; on the CPU this needs no
PyTorch, whose import alone would cost more than a typical refinement) or, on a GPU, from PyTorch autograd through
``soft``. Both compute the same model; the tests hold them to each other and to finite differences.

The shapes stay what the search can draw: points inside the canvas, radii of at least ``geometry.MIN_R``, convex
polygons. Parameters are scaled so that one Adam step moves everything by about the same distance on the canvas:
points and radii in px, an angle in px of arc at the shape's size, colours and opacity in their own units.
The reductions are done in a fixed order, so the same start gives the same result on any number of threads.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from artfx.stages.primitive import geometry as g

LR_PX = 1.0  # geometry step (px) at the first step; decays linearly to 10%
LR_COLOUR = 0.02  # colour and opacity step at the first step
SIGMA = (1.5, 0.05)  # edge width (px) at the first and the last step, geometric in between
BETAS = (0.9, 0.99)
STEPS_EVERY = 10  # steps of each refinement during the search (refine_every)
SIGMA_EVERY = SIGMA  # their edge widths
LR_EVERY = 1.0  # and their step, relative


@dataclass
class Shapes:
    """A shape list as arrays: vectors (N, NP), colours (N, 3), opacities (N,)."""

    p: np.ndarray
    col: np.ndarray
    alpha: np.ndarray

    @classmethod
    def of(cls, shapes) -> "Shapes":
        if not len(shapes):
            return cls(np.zeros((0, g.NP)), np.zeros((0, 3)), np.zeros(0))
        return cls(np.stack([np.asarray(p, np.float64) for p, _ in shapes]),
                   np.stack([np.asarray(c, np.float64)[:3] for _, c in shapes]),
                   np.array([float(c[3]) for _, c in shapes]))

    def __len__(self) -> int:
        return len(self.p)

    def items(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self.p[i].copy(), np.append(self.col[i], self.alpha[i])) for i in range(len(self.p))]

    def outlines(self) -> np.ndarray:
        ol = np.zeros((len(self.p), g.OL))
        for i in range(len(self.p)):
            g.outline(self.p[i], ol[i])
        return ol

    def quantised(self, alpha_fixed: float = 0.0) -> "Shapes":
        """Colours in 8 bits and opacities in 1/255 (what the search's solver gives; ``alpha_fixed`` > 0: that
        opacity, as given), angles in [0, pi)."""
        p = self.p.copy()
        rot = np.isin(p[:, 0].astype(int), (g.ROT_RECT, g.ROT_ELLIPSE))
        p[rot, 5] = np.mod(p[rot, 5], math.pi)
        col = np.floor(np.clip(self.col, 0.0, 1.0) * 255 + 0.5) / 255
        alpha = np.maximum(np.floor(np.clip(self.alpha, 0.0, 1.0) * 255 + 0.5) / 255, 1 / 255)
        if alpha_fixed > 0:
            alpha[:] = alpha_fixed
        return Shapes(p, col, alpha)


class Adam:
    """torch.optim.Adam's update, in numpy, with a learning rate per element."""

    def __init__(self, shape, betas=BETAS, eps: float = 1e-8):
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.t = 0
        self.b1, self.b2 = betas
        self.eps = eps

    def step(self, x: np.ndarray, grad: np.ndarray, lr) -> None:
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad * grad
        bc1 = 1 - self.b1 ** self.t
        bc2 = 1 - self.b2 ** self.t
        x -= (lr / bc1) * self.m / (np.sqrt(self.v) / math.sqrt(bc2) + self.eps)


def _scales(p: np.ndarray) -> np.ndarray:
    """Per-parameter scale: parameter = scale * optimised value (1 for px, 1 / size for angles; 0 for the type)."""
    s = np.ones_like(p)
    s[:, 0] = 0.0
    rot = np.isin(p[:, 0].astype(int), (g.ROT_RECT, g.ROT_ELLIPSE))
    s[rot, 5] = 1.0 / np.maximum(np.maximum(p[rot, 3], p[rot, 4]), 1.0)
    return s


def project(p: np.ndarray, prev: np.ndarray, W: int, H: int, spread: float) -> None:
    """Keep shapes drawable, in place: points in the canvas, radii and widths in range, polygons convex (a
    polygon that stopped being convex goes back to ``prev``)."""
    kind = p[:, 0].astype(int)
    rmax = float(max(W, H))
    for kd, pts in ((g.TRIANGLE, 3), (g.RECTANGLE, 2), (g.POLYGON, 4), (g.BEZIER, 3)):
        m = kind == kd
        if m.any():
            xs = 1 + 2 * np.arange(pts)
            p[np.ix_(m, xs)] = np.clip(p[np.ix_(m, xs)], 0.0, W)
            p[np.ix_(m, xs + 1)] = np.clip(p[np.ix_(m, xs + 1)], 0.0, H)
    m = np.isin(kind, (g.ROT_RECT, g.ROT_ELLIPSE, g.ELLIPSE, g.CIRCLE))
    p[m, 1] = np.clip(p[m, 1], 0.0, W)
    p[m, 2] = np.clip(p[m, 2], 0.0, H)
    m2 = np.isin(kind, (g.ROT_RECT, g.ROT_ELLIPSE, g.ELLIPSE))
    p[np.ix_(m2, [3, 4])] = np.clip(p[np.ix_(m2, [3, 4])], g.MIN_R, rmax)
    mc = kind == g.CIRCLE
    p[mc, 3] = np.clip(p[mc, 3], g.MIN_R, rmax)
    mb = kind == g.BEZIER
    p[mb, 7] = np.clip(p[mb, 7], 0.5 * spread, 8.0 * spread)
    for i in np.nonzero(kind == g.POLYGON)[0]:
        if not g.valid_shape(p[i]):
            p[i] = prev[i]


class NumbaGradient:
    """Soft SSE and its gradient on the CPU (``adjoint``), on ``workers`` threads."""

    def __init__(self, target, background, workers: int = 1):
        from artfx.stages.primitive import adjoint

        self.renderer = adjoint.Renderer(target, background, workers)

    def __call__(self, s: Shapes, sigma: float):
        ols = s.outlines()
        err = self.renderer.forward(ols, s.col, s.alpha, sigma)
        gol, gcol, ga, _ = self.renderer.backward()
        return err, g.outlines_grad(s.p, gol), gcol, ga

    def gains(self, s: Shapes) -> np.ndarray:
        """The exact rise of the squared error that removing each shape alone would make."""
        self.renderer.forward(s.outlines(), s.col, s.alpha, 0.0)
        return self.renderer.backward(want_gain=True)[3]

    def close(self) -> None:
        self.renderer.close()


class TorchGradient:
    """Soft SSE and its gradient by PyTorch autograd through ``soft`` on ``device`` (a GPU, or the CPU for tests)."""

    def __init__(self, target, background, device):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float32 if self.device.type == "mps" else torch.float64
        self.target = torch.as_tensor(target, dtype=self.dtype, device=self.device)
        self.bg = torch.as_tensor(np.asarray(background)[:3], dtype=self.dtype, device=self.device)

    def __call__(self, s: Shapes, sigma: float):
        from artfx.stages.primitive import soft

        torch = self.torch
        P = torch.as_tensor(s.p, dtype=self.dtype, device=self.device).requires_grad_(True)
        C = torch.as_tensor(s.col, dtype=self.dtype, device=self.device).requires_grad_(True)
        A = torch.as_tensor(s.alpha, dtype=self.dtype, device=self.device).requires_grad_(True)
        loss = soft.sse(soft.outlines(P), C, A, self.bg, self.target, sigma, soft.families(s.outlines()))
        loss.backward()
        out = (P.grad, C.grad, A.grad)
        return (loss.item(), *(t.detach().double().cpu().numpy() for t in out))

    def gains(self, s: Shapes) -> np.ndarray:  # the CPU kernels are exact and cheap
        return NumbaGradient(self.target.double().cpu().numpy(), self.bg.double().cpu().numpy()).gains(s)

    def close(self) -> None:
        pass


@dataclass
class Result:
    shapes: Shapes  # the last iterate (continuous colours; see ``Shapes.quantised``)
    steps: int
    snapshots: list = field(default_factory=list)  # Shapes at a few steps, for the animation


def refine(start: Shapes, grad, steps: int, *, W: int, H: int, alpha_fixed: float, spread: float,
           deadline: float | None = None, snapshots: int = 0, on_step=None, sigma=None, lr: float = 1.0) -> Result:
    """Optimise ``start`` for ``steps`` Adam steps (fewer if ``deadline``, a ``time.perf_counter()`` value, passes)
    with gradients from ``grad`` (a ``NumbaGradient`` or ``TorchGradient``); ``alpha_fixed`` > 0 keeps every
    opacity at that value."""
    n = len(start)
    if n == 0 or steps <= 0:
        return Result(start, 0)
    kind = start.p[:, :1]
    scale = _scales(start.p)[:, 1:]
    safe = np.where(scale > 0, scale, 1.0)
    nq = scale.size
    x = np.concatenate([(start.p[:, 1:] / safe).ravel(), start.col.ravel(), start.alpha])
    lr_unit = np.concatenate([np.full(nq, 1.0), np.full(3 * n, LR_COLOUR / LR_PX),
                              np.full(n, 0.0 if alpha_fixed > 0 else LR_COLOUR / LR_PX)])
    opt = Adam(x.shape)

    def shapes_of(x):
        p = np.concatenate([kind, x[:nq].reshape(n, -1) * scale], axis=1)
        return Shapes(p, x[nq : nq + 3 * n].reshape(n, 3).copy(), x[nq + 3 * n :].copy())

    snap_at = set(np.linspace(0, steps, snapshots + 1).round().astype(int)[1:].tolist()) if snapshots else set()
    snaps = []
    cur = start
    done = 0
    t_start = time.perf_counter()
    for step in range(steps):
        frac = step / max(steps - 1, 1)
        if deadline is not None:  # the schedule follows the clock when the clock ends it
            now = time.perf_counter()
            if step > 0 and now > deadline:
                break
            frac = max(frac, min(1.0, (now - t_start) / max(deadline - t_start, 1e-9)))
        s0, s1 = sigma or SIGMA
        width = s0 * (s1 / s0) ** frac
        err, gp, gcol, ga = grad(cur, width)
        gx = np.concatenate([(gp[:, 1:] * scale).ravel(), gcol.ravel(), ga])
        opt.step(x, gx, lr_unit * (lr * LR_PX * (1.0 - 0.9 * frac)))
        nxt = shapes_of(x)
        project(nxt.p, cur.p, W, H, spread)
        np.clip(nxt.col, 0.0, 1.0, out=nxt.col)
        np.clip(nxt.alpha, 1.0 / 255.0, 1.0, out=nxt.alpha)
        x[:nq] = (nxt.p[:, 1:] / safe).ravel()
        x[nq : nq + 3 * n] = nxt.col.ravel()
        x[nq + 3 * n :] = nxt.alpha
        cur = nxt
        done = step + 1
        if on_step is not None:
            on_step(done, err)
        if done in snap_at:
            snaps.append(cur.quantised(alpha_fixed))
    return Result(cur, done, snaps)


def resolve_colours(s: Shapes, target, background, alpha_fixed: float) -> Shapes:
    """The same geometry with each colour (and opacity) solved again, shape by shape in order, by the search's
    exact least-squares solver against the picture under it."""
    from artfx.stages.primitive import search

    canvas = search.Canvas(target, background)
    col = s.col.copy()
    alpha = s.alpha.copy()
    c4 = np.zeros(4)
    for i in range(len(s)):
        delta = search.score_shape(s.p[i], canvas.pref, canvas.W, canvas.H, alpha_fixed, c4)
        col[i], alpha[i] = c4[:3], c4[3]
        canvas.add(s.p[i], c4, delta)
    return Shapes(s.p.copy(), col, alpha)

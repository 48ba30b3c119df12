"""PyTorch batch scoring: thousands of candidates at once on a GPU (device=cuda), the same coverage model.

Candidates and mutations are drawn by the numba geometry kernels (seeded, so the run is reproducible); their
outlines go to the device, where the coverage of every candidate on every sub-scanline is computed densely and the
run sums of ``kernels.solve`` become two matrix products. Climbing is parallel: every chain proposes
``PER_CHAIN`` mutations per step and keeps the best one if it lowers the error. The winner is re-scored by the
numba kernel (float64) before it is composited, so the picture and its error are exactly those of the CPU path's
model. A Bezier stroke (a union of quads) is not batched: Bezier candidates are scored by the numba kernels.
"""

from __future__ import annotations

import numpy as np

from artfx.stages.primitive import geometry as g
from artfx.stages.primitive import kernels as k
from artfx.stages.primitive import search

PER_CHAIN = 32
BATCH_PIXELS = 1 << 27  # candidates x pixels x sub-scanlines per chunk (bounds device memory)


def _sub_intervals(ols, ys, W):
    """(B, R) left and right ends of each candidate on each sub-scanline ys (R,), clipped to [0, W]; empty: lo>=hi.

    Handles single convex quads (ol[0] == 0, ol[1] == 1) and ellipses (ol[0] == 1)."""
    import torch

    B = ols.shape[0]
    y = ys[None, :]
    lo = torch.full((B, ys.shape[0]), float("inf"), dtype=ols.dtype, device=ols.device)
    hi = torch.full_like(lo, float("-inf"))
    for e in range(4):
        f = (e + 1) % 4
        x0, y0 = ols[:, 2 + 2 * e, None], ols[:, 3 + 2 * e, None]
        x1, y1 = ols[:, 2 + 2 * f, None], ols[:, 3 + 2 * f, None]
        dy = y1 - y0
        ok = (dy != 0) & ((y - y0) * (y - y1) <= 0)
        x = x0 + (y - y0) * (x1 - x0) / torch.where(dy == 0, torch.ones_like(dy), dy)
        lo = torch.where(ok, torch.minimum(lo, x), lo)
        hi = torch.where(ok, torch.maximum(hi, x), hi)
    # ellipses
    cx, cy, a, b, c = (ols[:, i, None] for i in range(1, 6))
    d = y - cy
    disc = b * b * d * d - a * (c * d * d - 1.0)
    sq = torch.sqrt(torch.clamp(disc, min=0.0))
    a_safe = torch.where(a > 0, a, torch.ones_like(a))
    elo = cx + (-b * d - sq) / a_safe
    ehi = cx + (-b * d + sq) / a_safe
    empty = (disc <= 0) | (a <= 0)
    elo = torch.where(empty, torch.full_like(elo, float("inf")), elo)
    ehi = torch.where(empty, torch.full_like(ehi, float("-inf")), ehi)
    is_ell = ols[:, 0, None] == 1.0
    lo = torch.where(is_ell, elo, lo).clamp(0.0, float(W))
    hi = torch.where(is_ell, ehi, hi).clamp(0.0, float(W))
    return lo, hi


def coverage_batch(ols, W, H):
    """Dense coverage (B, H, W) of a batch of outlines (torch tensor, (B, OL)); kernels.row_runs' model."""
    import torch

    B = ols.shape[0]
    dt, dev = ols.dtype, ols.device
    xs = torch.arange(W, dtype=dt, device=dev)
    cov = torch.zeros((B, H, W), dtype=dt, device=dev)
    for j in range(k.SUB):
        ys = torch.arange(H, dtype=dt, device=dev) + (j + 0.5) / k.SUB
        lo, hi = _sub_intervals(ols, ys, W)
        ov = torch.minimum(hi[:, :, None], xs + 1.0) - torch.maximum(lo[:, :, None], xs)
        cov += ov.clamp(min=0.0)
    return cov / k.SUB


class TorchSearch:
    """The search of ``search.best_shape`` with candidates scored in batches by PyTorch on ``device``."""

    def __init__(self, canvas: search.Canvas, device):
        import torch

        self.canvas = canvas
        self.device = torch.device(device)
        self.dtype = torch.float64 if self.device.type == "cpu" else torch.float32
        self.target = torch.as_tensor(canvas.target.reshape(-1, 3), dtype=self.dtype, device=self.device)
        self.sync()

    def sync(self) -> None:
        """Upload the current picture (after a shape was added)."""
        import torch

        cur = torch.as_tensor(self.canvas.cur.reshape(-1, 3), dtype=self.dtype, device=self.device)
        r = self.target - cur
        self.x1 = torch.cat([cur, cur * cur], dim=1)  # P, M
        self.x2 = torch.cat([r, r * cur], dim=1)  # R, T

    def sums(self, ols_np: np.ndarray):
        """(B, 13) run sums [Q, P, M, R, T] for a batch of outlines (numpy)."""
        import torch

        W, H = self.canvas.W, self.canvas.H
        chunk = max(1, BATCH_PIXELS // (W * H * k.SUB))
        out = []
        for s in range(0, len(ols_np), chunk):
            ols = torch.as_tensor(ols_np[s : s + chunk], dtype=self.dtype, device=self.device)
            cov = coverage_batch(ols, W, H).reshape(ols.shape[0], -1)
            c2 = cov * cov
            q = c2.sum(dim=1, keepdim=True)
            out.append(torch.cat([q, c2 @ self.x1, cov @ self.x2], dim=1))
        return torch.cat(out).double().cpu().numpy()

    def scores(self, ols_np: np.ndarray, alpha: float) -> np.ndarray:
        sums = self.sums(ols_np)
        col = np.zeros(4)
        return np.array([k.solve(sums[i], alpha, col) for i in range(len(sums))])

    def best_shape(self, seeds, kind_sel: int, spread: float, n_cand: int, max_fail: int, alpha: float):
        c = self.canvas
        if kind_sel == g.BEZIER:  # not batched: the numba search
            return search.best_shape(c, seeds, kind_sel, spread, n_cand, max_fail, alpha, None)
        R = len(seeds)
        # restart i draws its candidates in size band search.SIZE_BANDS[i % 4], as the numba search does
        bands = search.SIZE_BANDS
        batches = [g.random_batch(int(seeds[i]), kind_sel, c.W, c.H, spread * bands[i % len(bands)], n_cand)
                   for i in range(R)]
        ps = np.concatenate([b[0] for b in batches])
        ols = np.concatenate([b[1] for b in batches])
        if kind_sel == g.COMBO:  # draw Bezier strokes again as other kinds: the batch scorer has no unions
            for i in np.nonzero(ps[:, 0] == g.BEZIER)[0]:
                ps[i, 0] = g.TRIANGLE
                g.outline(ps[i], ols[i])
        sc = self.scores(ols, alpha).reshape(R, n_cand)
        best_i = sc.argmin(axis=1)
        chains = ps.reshape(R, n_cand, -1)[np.arange(R), best_i].copy()
        chain_sc = sc[np.arange(R), best_i]
        patience = max(1, -(-max_fail // PER_CHAIN))
        stale = 0
        step = 0
        rng_seeds = np.random.default_rng(int(seeds[-1]))
        while stale < patience:
            step += 1
            mps, mols = g.mutate_batch(int(rng_seeds.integers(0, 2**31 - 1)), chains, PER_CHAIN, c.W, c.H, spread)
            msc = self.scores(mols, alpha).reshape(R, PER_CHAIN)
            j = msc.argmin(axis=1)
            better = msc[np.arange(R), j] < chain_sc
            if better.any():
                stale = 0
                idx = np.nonzero(better)[0]
                chains[idx] = mps.reshape(R, PER_CHAIN, -1)[idx, j[idx]]
                chain_sc[idx] = msc[idx, j[idx]]
            else:
                stale += 1
        best = int(np.argmin(chain_sc))
        p = chains[best].copy()
        col = np.zeros(4)
        delta = search.score_shape(p, c.pref, c.W, c.H, alpha, col)
        return p, col, delta

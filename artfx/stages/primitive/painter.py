"""The painter: shapes added one by one by the search, refined together now and then, within a count or a time.

It owns the working canvas and the accepted shape list (always a picture the exact renderer draws, never worse
than the one before it), and keeps the history of that list (shapes added, lists replaced by a refinement) for
the animation. A refinement is kept only when the exact error of its result is lower; shapes that end up
contributing nothing are dropped, and the search places new ones in their stead. After the final refinement,
``rebuild`` moves (a tenth of the shapes taken out and placed again against the picture without them, all refined
together) and z-order swaps get out of the optimum that placing shapes one by one and then refining them ends in;
each is kept only when the exact error falls.
"""

from __future__ import annotations

import math
import time

import numpy as np

from artfx.stages.primitive import geometry as g
from artfx.stages.primitive import kernels as k
from artfx.stages.primitive import refine as rf
from artfx.stages.primitive import render, search

NOTHING = 1e-12  # a change of the squared error below this per pixel is rounding, not a shape's doing
FINAL_SHARE = 0.2  # with a time budget: the share of it kept for the final refinement
SNAPSHOTS = 8  # frames of the final refinement in the animation
REBUILD_SHARE = 0.1  # the share of the shapes a large-neighbourhood move takes out and places again
REBUILD_STEPS = 20  # refinement steps of each move
REBUILD_SIGMA = (0.3, 0.05)  # their edge widths (px): the shapes are near an optimum already
REBUILD_LR = 0.3  # and their step, relative (refine.LR_PX): at 1 the refinement leaves that optimum
REBUILD_FOCUS = 0.25  # the share of the search's candidates centred where the error is, when placing again
# With a time budget: the share of it the moves get (after the final refinement). 0: none, since with a budget the
# count is free and the search's next shapes lower the error faster (bench_primitive.py's curve, astronaut
# triangles, one thread: a share of 0.15 gave RMSE 31.3 against 30.4 at 2 s, 8.0 against 6.0 at 10 s).
REBUILD_TIME_SHARE = 0.0
REORDER_LIMIT = 1 << 24  # shapes x working pixels up to which z-order swaps are tried (float32 maps, 64 MB)
DENSE_LIMIT = 1 << 26  # quads x sub-scanline pixels up to which a GPU refines (0.5 GB per tensor autograd keeps)


class Painter:
    """Search and refinement over one working canvas. ``shapes`` is the accepted list, ``canvas.cur`` its exact
    picture, ``events`` its history; ``paint`` runs the whole thing, ``add_one`` and ``refine`` are its steps."""

    def __init__(self, target: np.ndarray, background: np.ndarray, *, kind: int, spread: float, params, workers: int,
                 pool=None, scorer=None, device=None, progress=None):
        self.canvas = search.Canvas(target, background)
        self.target, self.bg = self.canvas.target, np.asarray(background, dtype=np.float64)
        self.W, self.H = self.canvas.W, self.canvas.H
        self.kind, self.spread, self.params = kind, spread, params
        self.workers, self.pool, self.scorer, self.device = workers, pool, scorer, device
        self.report = progress or (lambda done, total, rmse: None)
        self.shapes: list[tuple[np.ndarray, np.ndarray]] = []
        self.events: list[tuple[str, object]] = []  # ("add", (p, col)) or ("set", [(p, col), ...])
        self.refinements = [0, 0]  # tried, kept
        self.rebuilds = [0, 0]  # large-neighbourhood moves tried, kept
        self.nothing = NOTHING * self.W * self.H
        self._grads: dict = {}
        self._shrink_size = max(self.W, self.H) / 4.0  # method=shrink: the current maximum size

    # ---- the parts ----------------------------------------------------------------------------------------
    def add_one(self, seeds) -> bool:
        """One step of the search: the best new shape, composited if it lowers the error."""
        item = self._place(seeds, self.params.focus)
        if item is None:
            return False
        self.shapes = self.shapes + [item]
        self.events.append(("add", item))
        return True

    def _place(self, seeds, focus: float):
        """The search's best new shape on the canvas as it is, composited there if it lowers the error (the shape
        list is not touched); None if none does."""
        c, pr = self.canvas, self.params
        if pr.method == "shrink":
            p, col, delta = search.best_shrink(c, seeds, self.kind, self._shrink_size, pr.candidates, pr.alpha,
                                               self.pool)
        elif self.scorer is not None:
            p, col, delta = self.scorer.best_shape(seeds, self.kind, self.spread, pr.candidates, pr.failures, pr.alpha)
        else:
            p, col, delta = search.best_shape(c, seeds, self.kind, self.spread, pr.candidates, pr.failures, pr.alpha,
                                              self.pool, near=focus)
        if p is None or not delta < -self.nothing:
            return None
        c.add(p, col, delta)
        if self.scorer is not None:
            self.scorer.sync()
        return p.copy(), col.copy()

    def _gradient(self):
        """The gradient: PyTorch on the device (dense: every shape over every pixel, so only while that fits
        DENSE_LIMIT; a Bezier stroke counts as its quads), else the numba kernels on the CPU."""
        quads = sum(g.BEZIER_SEGMENTS if int(p[0]) == g.BEZIER else 1 for p, _ in self.shapes)
        dense = self.device is not None and quads * self.W * self.H * k.SUB <= DENSE_LIMIT
        key = "torch" if dense else "numba"
        if key not in self._grads:
            self._grads[key] = (rf.TorchGradient(self.target, self.bg, self.device) if dense
                                else rf.NumbaGradient(self.target, self.bg, self.workers))
        return self._grads[key]

    def _sse(self, items) -> float:
        pic = render.render(items, self.bg, (self.W, self.H))
        return float(((pic - self.target) ** 2).sum()), pic

    def refine(self, steps: int, deadline: float | None = None, snapshots: int = 0, on_step=None, **schedule) -> bool:
        """Refine every shape together; keep the result if its exact error is lower. Then drop the shapes that
        contribute nothing. Returns whether the list changed."""
        if len(self.shapes) == 0 or steps <= 0:
            return False
        self.refinements[0] += 1
        grad = self._gradient()
        start = rf.Shapes.of(self.shapes)
        res = rf.refine(start, grad, steps, W=self.W, H=self.H, alpha_fixed=self.params.alpha, spread=self.spread,
                        deadline=deadline, snapshots=snapshots, on_step=on_step, **schedule)
        best = float(((self.canvas.cur - self.target) ** 2).sum())
        changed = None
        q = res.shapes.quantised(self.params.alpha)
        for cand in (q, rf.resolve_colours(q, self.target, self.bg, self.params.alpha)):
            items = cand.items()
            sse, pic = self._sse(items)
            if sse < best:
                best, changed = sse, (items, pic)
        if changed is not None:
            self.refinements[1] += 1
            for snap in res.snapshots[:-1]:
                self.events.append(("set", snap.items()))
            self._set(*changed)
        gains = grad.gains(rf.Shapes.of(self.shapes))
        useless = gains <= self.nothing  # removing it alone would not raise the error
        if useless.any():
            items = [s for s, u in zip(self.shapes, useless) if not u]
            self._set(items, render.render(items, self.bg, (self.W, self.H)))
            changed = True
        return changed is not None

    def _set(self, items, picture) -> None:
        self.shapes = items
        self.events.append(("set", items))
        self.canvas.reset(picture)
        if self.scorer is not None:
            self.scorer.sync()

    def start_from(self, items: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Begin with these shapes instead of an empty canvas (a video's previous frame): the search tops them up
        to ``n`` and the refinement moves them all."""
        self._set(list(items), render.render(items, self.bg, (self.W, self.H)))

    # ---- moves that undo early decisions -------------------------------------------------------------------
    def rebuild(self, rng, window: bool = False, deadline: float | None = None) -> bool:
        """One large-neighbourhood move: take out ``REBUILD_SHARE`` of the shapes (the ones whose removal costs
        least, or with ``window`` a random run of consecutive shapes in the stack), place as many again
        by the search against the picture without them, refine all shapes together (``REBUILD_STEPS`` gentle
        steps), try z-order swaps; kept only when the exact error falls. Returns whether it was kept."""
        n = len(self.shapes)
        if n == 0:
            return False
        kk = max(1, min(n, round(REBUILD_SHARE * n)))
        grad = self._gradient()
        seeds = rng.integers(0, 2**31 - 1, size=(kk, self.params.restarts))
        start = int(rng.integers(0, n - kk + 1))
        if not window:
            gains = grad.gains(rf.Shapes.of(self.shapes))
            out = set(np.argsort(gains, kind="stable")[:kk].tolist())
        else:
            out = set(range(start, start + kk))
        keep = [s for i, s in enumerate(self.shapes) if i not in out]
        before = self.canvas.cur.copy()
        best = float(((before - self.target) ** 2).sum())
        self.canvas.reset(render.render(keep, self.bg, (self.W, self.H)))
        if self.scorer is not None:
            self.scorer.sync()
        items = list(keep)
        for i in range(kk):
            item = self._place(seeds[i], REBUILD_FOCUS)
            if item is None:
                break
            items.append(item)
        cands = [items]
        if items and (deadline is None or time.perf_counter() < deadline):
            res = rf.refine(rf.Shapes.of(items), grad, REBUILD_STEPS, W=self.W, H=self.H,
                            alpha_fixed=self.params.alpha, spread=self.spread, sigma=REBUILD_SIGMA, lr=REBUILD_LR,
                            deadline=deadline)
            q = res.shapes.quantised(self.params.alpha)
            cands += [q.items(), rf.resolve_colours(q, self.target, self.bg, self.params.alpha).items()]
        changed = None
        for cand in cands:
            sse, pic = self._sse(cand)
            if sse < best - self.nothing:
                best, changed = sse, (cand, pic)
        self.rebuilds[0] += 1
        if changed is None:
            self.canvas.reset(before)
            if self.scorer is not None:
                self.scorer.sync()
            return False
        self.rebuilds[1] += 1
        self._set(*changed)
        self.reorder()
        return True

    def reorder(self) -> bool:
        """Z-order moves: swap neighbours in the stack where that lowers the error (``search.swap_gains`` estimates
        every swap at once; the chosen ones are kept only when the exact error falls). Returns whether any was."""
        n = len(self.shapes)
        if n < 2 or n * self.W * self.H > REORDER_LIMIT:
            return False
        est = search.swap_gains(self.shapes, self.bg, self.canvas.cur, self.target)
        order = [int(i) for i in np.argsort(est, kind="stable") if est[i] < -self.nothing]
        if not order:
            return False
        chosen, used = [], set()
        for i in order:  # the best swaps first, none sharing a shape
            if i not in used and i + 1 not in used:
                chosen.append(i)
                used |= {i, i + 1}
        best = float(((self.canvas.cur - self.target) ** 2).sum())
        for picks in (chosen, chosen[:1]):  # all of them together, else the best alone
            items = list(self.shapes)
            for i in picks:
                items[i], items[i + 1] = items[i + 1], items[i]
            sse, pic = self._sse(items)
            if sse < best - self.nothing:
                self._set(items, pic)
                return True
        return False

    # ---- the whole run ------------------------------------------------------------------------------------
    def paint(self, rng, budget: float = 0.0) -> None:
        """Place ``params.n`` shapes (with a ``budget`` in seconds: as many as its search share allows), refining
        every ``params.refine_every`` shapes (every 5% of them past 20 x that), then the final refinement
        (``params.refine`` steps, or the rest of the budget), z-order swaps and ``params.rebuild`` rebuilds (not
        with a budget: see REBUILD_TIME_SHARE)."""
        pr = self.params
        t0 = time.perf_counter()
        timed = budget > 0
        n = 100_000 if timed else pr.n
        final_steps = pr.refine
        if timed and final_steps:
            final_steps = 1_000_000  # the deadline ends it
        # with a budget the refinements during the search cost more shapes than they are worth: shapes are added by
        # the search alone, and the end of the budget refines them all (see final_share)
        every = pr.refine_every if not timed else 0
        size0, min_size = max(self.W, self.H) / 4.0, max(2.0, max(self.W, self.H) / 128.0)
        rebuild_share = REBUILD_TIME_SHARE if timed and pr.rebuild and pr.refine else 0.0
        timed_rebuild = rebuild_share > 0
        end_final = t0 + budget * (1.0 - rebuild_share)  # with a budget: the end of the final refinement
        total = (pr.n if not timed else 0) + (pr.refine + pr.rebuild if final_steps else 0)
        attempts = 0
        next_at = every
        limit = n  # attempts: one per shape, more when dropped shapes are replaced (at most n more)
        while len(self.shapes) < n and attempts < limit:
            if timed and time.perf_counter() > t0 + budget * (1.0 - rebuild_share
                                                               - (self.final_share() if final_steps else 0.0)):
                break
            seeds = rng.integers(0, 2**31 - 1, size=pr.restarts)
            if pr.method == "shrink":
                steps_ = 20
                each = max(1, -(-n // steps_))
                self._shrink_size = max(min_size, size0 - (size0 - min_size) / steps_ * (attempts // each))
            before = len(self.shapes)
            added = self.add_one(seeds)
            attempts += 1
            if every and added and len(self.shapes) >= next_at and len(self.shapes) < n:
                # every `every` shapes, or every 5% of the shapes so far once that is more: a refinement costs about
                # as much at 200 shapes as at 100, while each new shape gets smaller and cheaper to find
                next_at = len(self.shapes) + max(every, -(-len(self.shapes) // 20))
                self.refine(rf.STEPS_EVERY, sigma=rf.SIGMA_EVERY, lr=rf.LR_EVERY)
                limit = min(limit + max(0, before + 1 - len(self.shapes)), 2 * n)
            self.report(attempts, max(total, attempts) if not timed else None, self.canvas.rmse)
        base = attempts
        if not timed:
            total = base + (pr.refine + pr.rebuild if final_steps else 0)
        if final_steps and not (timed and self.final_share() == 0.0):
            deadline = end_final if timed else None

            def on_step(step, _err):
                if not timed and step < pr.refine:  # the last step is reported below, after the replacements
                    self.report(base + step, total, self.canvas.rmse)

            before = len(self.shapes)
            self.refine(final_steps, deadline=deadline, snapshots=SNAPSHOTS, on_step=on_step)
            # shapes dropped at the end are replaced by the search (not refined again)
            for _ in range(max(0, before - len(self.shapes))):
                self.add_one(rng.integers(0, 2**31 - 1, size=pr.restarts))
            self.reorder()
            self.report(base + (pr.refine if not timed else 0), None if timed else total, self.canvas.rmse)
            base += pr.refine if not timed else 0
        # large-neighbourhood moves: pr.rebuild rounds (with a budget: as many as its last share allows)
        rounds = (pr.rebuild if not timed else 1_000_000 * timed_rebuild) if pr.rebuild and pr.refine else 0
        last, window = 0.0, False
        for r in range(rounds):
            now = time.perf_counter()
            if timed and now + last > t0 + budget:
                break
            # the cheapest shapes first; after a move that failed, a run of the stack instead (bench: the cheapest
            # ones were kept 8 times in 10, runs of the stack about 1 in 10)
            window = not self.rebuild(rng, window, deadline=t0 + budget if timed else None) and not window
            last = time.perf_counter() - now
            self.report(base + r + 1, None if timed else total, self.canvas.rmse)

    def final_share(self) -> float:
        """With a time budget: the share of it the final refinement gets, FINAL_SHARE while the canvas has 64 px or
        more per shape, down to none at 32 px. Past that, the search's next (tiny, quick) shapes lower the error
        faster than refining thousands of them (bench_primitive.py's curve, 256 px, one thread: the refinement won
        with 300-800 shapes, at 5 and 10 s, and lost with 2400, at 20 s)."""
        px = self.W * self.H / max(len(self.shapes), 1)
        return FINAL_SHARE * min(1.0, max(0.0, (px - 32.0) / 32.0))

    def close(self) -> None:
        for grad in self._grads.values():
            grad.close()

    @property
    def rmse(self) -> float:
        return math.sqrt(float(((self.canvas.cur - self.target) ** 2).mean())) * 255.0

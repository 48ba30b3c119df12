"""Any size: a scale too big for memory is optimised in overlapping tiles, with the style statistics of the whole
picture (issue 18, item 4).

The optimiser still holds the whole image ``x`` (an image is small next to VGG's activations); only the network
runs tile by tile. Each tile is a *core* (the tiles' cores partition the picture, their edges on multiples of 16
px, VGG's total stride at conv5_1, so every layer's map crops exactly) plus a *halo* of context around it.

Every loss term is a sum over feature pixels, or a smooth function of such sums, so it decomposes over the cores:

- Gram matrix of a layer: ``G = sum_t F_t F_t^T / N`` (``F_t`` the core's features of tile t); with region masks,
  ``G = sum_t (F_t m_t) F_t^T / sum(m)``; ``loss=meanstd``: mean and deviation from ``sum f`` and ``sum f^2``.
- Content: ``sum_t |F_t - F_c,t|^2 / |F_c|^2``, against the content features of the whole picture.

One evaluation makes two passes. Pass 1 (no gradient) runs every tile and adds up the cores' sums; the style loss
of the whole picture follows, and so does ``D = dL/dG`` (autograd on the small statistics). Pass 2 runs every tile
again with the gradient and backpropagates the surrogate ``sum(D * F_t F_t^T / N) + content on the core``, whose
gradient is exactly the global loss's gradient through that tile's core. Each tile's input gradient (core and
halo) is *added* into the full gradient: the core's features depend on pixels in the halo too, so this sum is the
gradient of the untiled loss, not an approximation of it; there is no blend to tune and nothing to make a seam.

Halo. A core's features equal the untiled network's when the halo covers the receptive field beyond the core:
conv5_1 sees 156 px, i.e. 70 px past its 16 px cell on either side (conv4_2, the content layer, 34 px). With
``HALO = 80`` (the next multiple of 16) the tiled features, loss and gradient equal the untiled ones up to
float rounding (scripts/bench_style_tiles.py prints the error against the halo). The tile grid is still shifted
(in steps of 16 px, from the evaluation count) so that no tile edge stays at one place, in case a smaller halo
or bf16 rounding ever leaves a trace there.

Total variation and the temporal loss are cheap and run on the whole image directly.

Planning. :func:`plan_scale` takes the memory a scale needs untiled (VGG's activations and gradients, about 5.6
kB per pixel in float32, as :meth:`StyleStage.memory` estimates) and, when it exceeds the budget (``HEADROOM`` of
the memory available on the device; the host for the CPU), or when ``tile`` is set and the scale is larger, caps
L-BFGS's history to what fits (each pair is two copies of the image) and picks the largest tile whose
activations fit in the rest (:func:`plan_tile`). The style and content targets are computed with the same tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from artfx.stages.style import losses

ALIGN = 16  # VGG's total stride at conv5_1: cores start on multiples of it, so every layer's map crops exactly
HALO = 80  # px of context around each core: conv5_1's receptive field reaches 70 px past a 16 px cell
GRAD_BPP = 1400 * 4  # bytes per input pixel of VGG's activations and gradients to conv5_1, float32 (memory())
NOGRAD_BPP = 1400  # bytes per input pixel of a forward pass without gradient (measured 0.9 kB at 512 px)
FIXED_BPP = 320  # bytes per pixel of a scale's images (about 20 float32 copies: x, its gradient, the best x,
#   L-BFGS's work vectors, the content, the style image) and the content features (conv4_2: 32 B/px)
MIN_CORE = 64  # smaller cores spend most of their time on the halo
MIN_HISTORY = 5  # L-BFGS pairs kept at least; below this the planner takes smaller tiles instead
HISTORY_SHARE = 0.5  # at most this share of the memory left after the images goes to L-BFGS's history
FORWARD_SHARE = 0.5  # a forward pass without gradient against forward and backward (bf16 512 px: 0.45 of 0.89 s)


# ---- planning ---------------------------------------------------------------------------------------------
def budget(device) -> int | None:
    """Bytes a scale may use now: ``resources.HEADROOM`` of what is available on the device (the host for the
    CPU); None where that cannot be read (then nothing is tiled unless ``tile`` asks)."""
    from artfx import resources

    kind = getattr(device, "type", str(device).split(":")[0])
    if kind not in ("cuda", "mps"):
        free = resources.available_host()
    else:
        free = resources.available_device(str(device))
        if free is not None and kind == "cuda":  # what torch's allocator caches from an earlier scale is ours
            import torch

            free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return None if free is None else int(resources.HEADROOM * free)


def align(n: int) -> int:
    return max(ALIGN, int(n) // ALIGN * ALIGN)


def tile_pixels(hw: tuple[int, int], core: int, halo: int = HALO) -> int:
    """Input pixels of the largest tile of a grid with cores of ``core`` px."""
    return min(core + 2 * halo, hw[0]) * min(core + 2 * halo, hw[1])


def plan_tile(hw: tuple[int, int], budget_bytes: float, bytes_per_pixel: float, halo: int = HALO) -> int | None:
    """The largest core (a multiple of 16 px, at least ``MIN_CORE``) whose tile, core plus ``halo`` on each side,
    needs at most ``budget_bytes`` at ``bytes_per_pixel``; None when not even the smallest fits."""
    long = max(hw)
    if tile_pixels(hw, align(long), halo) * bytes_per_pixel <= budget_bytes:
        return align(long)
    lo, hi = MIN_CORE // ALIGN, max(MIN_CORE, long) // ALIGN
    if tile_pixels(hw, lo * ALIGN, halo) * bytes_per_pixel > budget_bytes:
        return None
    while lo < hi:  # largest k with tile_pixels(k * ALIGN) within the budget
        mid = (lo + hi + 1) // 2
        if tile_pixels(hw, mid * ALIGN, halo) * bytes_per_pixel <= budget_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo * ALIGN


@dataclass
class Plan:
    """How one scale runs: ``core`` px tiles (None: untiled), ``history`` L-BFGS pairs, ``need`` peak bytes."""

    core: int | None
    history: int
    need: int
    target_core: int | None = None  # tiles for the style and content targets (no gradient: larger ones fit)

    @property
    def tiled(self) -> bool:
        return self.core is not None

    def work(self, hw: tuple[int, int]) -> float:
        """An iteration's cost on this plan against the untiled one at ``hw``: every tile's pixels, halo and all,
        seen twice, once without gradient for the whole-picture statistics (FORWARD_SHARE of a pass with it)."""
        if not self.tiled:
            return 1.0
        seen = sum((y1 - y0) * (x1 - x0) for _, (y0, y1, x0, x1) in grid(hw, self.core))
        return seen / (hw[0] * hw[1]) * (1 + FORWARD_SHARE)


def untiled_need(hw: tuple[int, int], style_long: float) -> int:
    """What :meth:`StyleStage.memory` has always estimated: activations and gradients of the result and the style
    image (taken as square) at 5.6 kB per pixel."""
    return int((hw[0] * hw[1] + style_long ** 2) * GRAD_BPP)


def plan_scale(hw: tuple[int, int], style_long: float, channels: int, history: int, tile: int,
               budget_bytes: int | None) -> Plan | None:
    """Plan a scale of ``hw`` px (``channels`` 1 or 3 optimised, L-BFGS ``history`` pairs; 0 for Adam) against
    ``budget_bytes`` (None: unknown). ``tile`` > 0 forces cores of that size when the scale's long side is larger.
    None when even the smallest tiles with ``MIN_HISTORY`` pairs do not fit."""
    need = untiled_need(hw, style_long)
    forced = tile > 0 and max(hw) > tile
    if not forced and (budget_bytes is None or need <= budget_bytes):
        return Plan(None, history, need)
    pixels = hw[0] * hw[1]
    pair = 2 * channels * 4 * pixels  # one L-BFGS pair: a step and a gradient difference, float32
    fixed = FIXED_BPP * pixels
    style_hw = (int(round(style_long)),) * 2
    if budget_bytes is None:  # forced tiles, memory unknown: keep the history
        core = align(tile)
        return Plan(core, history, fixed + history * pair + tile_pixels(hw, core) * GRAD_BPP, core)
    left = budget_bytes - fixed
    keep = min(history, max(MIN_HISTORY if history else 0, int(HISTORY_SHARE * left / pair))) if history else 0
    core = plan_tile(hw, left - keep * pair, GRAD_BPP)
    if core is None:
        return None
    if forced:
        core = min(core, align(tile))
    # the targets come first, before L-BFGS holds any history: tiles of their own, without gradient
    target_core = plan_tile(style_hw, left, NOGRAD_BPP) or MIN_CORE
    if forced:
        target_core = min(target_core, align(tile))
    need = fixed + max(keep * pair + tile_pixels(hw, core) * GRAD_BPP, tile_pixels(style_hw, target_core) * NOGRAD_BPP)
    return Plan(core, keep, int(need), target_core)


# ---- the tile grid ----------------------------------------------------------------------------------------
def _cuts(n: int, core: int, shift: int) -> list[int]:
    """Core edges along one axis of ``n`` px: 0, interior edges on multiples of 16, n. ``shift`` (an evaluation
    count) moves the interior edges by a multiple of 16 within what keeps every core at most ``core`` px."""
    if n <= core:
        return [0, n]
    k = math.ceil(n / core)
    if k * core - n < 2 * ALIGN:  # room to move the edges by at least 16 px either way
        k += 1
    step = -(-math.ceil(n / k) // ALIGN) * ALIGN  # base core, a multiple of 16, at most core
    k = -(-n // step)  # rounding the step up may leave fewer cores
    last = n - (k - 1) * step  # the last core's size before shifting (0 < last <= step)
    # d moves every interior edge: the first core becomes step + d, the last last - d; both in (0, core]
    lo = -(-max(last - core, ALIGN - step) // ALIGN)
    hi = min(core - step, last - ALIGN) // ALIGN
    lo, hi = min(lo, 0), max(hi, 0)
    span = hi - lo + 1
    d = (lo + (shift * 7 - lo) % span) * ALIGN if span > 1 else 0  # shift 0: no offset; 7: jumps, not a sweep
    edges = [0] + [i * step + d for i in range(1, k)] + [n]
    return [e for i, e in enumerate(edges) if i == 0 or (e > edges[i - 1] and (e < n or i == k))]


def grid(hw: tuple[int, int], core: int, shift: int = 0, halo: int = HALO):
    """Tiles covering ``hw``: ((core y0, y1, x0, x1), (tile y0, y1, x0, x1)); cores partition the picture."""
    ys = _cuts(hw[0], core, shift)
    xs = _cuts(hw[1], core, shift * 3 + 1 if shift else 0)
    out = []
    for y0, y1 in zip(ys, ys[1:]):
        for x0, x1 in zip(xs, xs[1:]):
            tile = (max(0, y0 - halo), min(hw[0], y1 + halo), max(0, x0 - halo), min(hw[1], x1 + halo))
            out.append(((y0, y1, x0, x1), tile))
    return out


def _stride(layer: str) -> int:
    return 2 ** (int(layer[4]) - 1)  # conv{b}_{i}: b - 1 poolings before it


def _feature_box(core, tile, layer: str):
    """The core's rows and columns in the layer's map of the tile (ceil_mode pooling: ends round up)."""
    s = _stride(layer)
    (y0, y1, x0, x1), (ty0, _, tx0, _) = core, tile
    return (y0 // s - ty0 // s, -(-y1 // s) - ty0 // s, x0 // s - tx0 // s, -(-x1 // s) - tx0 // s)


def _feature_hw(hw, layer: str):
    s = _stride(layer)
    return -(-hw[0] // s), -(-hw[1] // s)


def _crop(t, box):
    y0, y1, x0, x1 = box
    return t[..., y0:y1, x0:x1]


# ---- the tiled loss ---------------------------------------------------------------------------------------
class TiledObjective:
    """The same weighted Gatys loss as :class:`optimize.Objective`, evaluated tile by tile.

    ``objective(x)`` gives the loss (a 0-d tensor, no gradient); ``objective.backward(x, gain)`` sets ``x.grad``
    to ``gain`` times the gradient and returns the loss as a float. ``x`` is (1, 1 or 3, H, W); one channel is
    expanded to three per tile (``colors=keep``)."""

    def __init__(self, net, setup, content, styles, style_weights, masks, autocast, temporal=None, *,
                 core: int, target_core: int | None = None, halo: int = HALO):
        import torch

        self.net, self.setup, self.autocast, self.temporal = net, setup, autocast, temporal
        self.core, self.halo = core, halo
        self.target_core = target_core or core
        self.evaluations = 0
        self.meanstd = setup.loss != "gram"
        self.layers = tuple(dict.fromkeys(setup.content_layers + setup.style_layers))
        lw = list(setup.layer_weights) or [1.0] * len(setup.style_layers)
        self.style_lw = [w / sum(lw) for w in lw]
        self.content_lw = 1.0 / len(setup.content_layers) if setup.content_layers else 0.0
        self.hw = tuple(content.shape[-2:])
        with torch.no_grad():
            self.content_targets = {}
            if setup.content_weight and setup.content_layers:
                self.content_targets = self._assemble(content, setup.content_layers)
            self.content_norms = {l: t.pow(2).sum() for l, t in self.content_targets.items()}
            self.masks = None
            if masks is not None:
                self.masks = [{l: losses.downsample_mask(m, _feature_hw(self.hw, l), setup.pool)
                               for l in setup.style_layers} for m in masks]
                self.mask_sums = [{l: m[l].float().sum().clamp_min(losses.EPS) for l in setup.style_layers}
                                  for m in self.masks]
                area = [float(m.mean()) for m in masks]
                mean_w = sum(style_weights) / len(style_weights)
                self.style_w = [w / mean_w * a for w, a in zip(style_weights, area)]
            else:
                self.style_w = [w / sum(style_weights) for w in style_weights]
            self.style_targets = []
            for s in styles:
                sums = self._sums(s, None, self.target_core, 0, setup.style_layers)
                hw = tuple(s.shape[-2:])
                stats = {l: self._statistic(sums[l][0], _count(hw, l)) for l in setup.style_layers}
                self.style_targets.append({l: (t, t.pow(2).sum()) for l, t in stats.items()})

    # -- network on one tile --
    def _features(self, x, layers):
        import torch

        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.autocast is None:
            return self.net.features(x, layers)
        with torch.autocast(device_type=x.device.type, dtype=self.autocast):
            return self.net.features(x, layers)

    def _assemble(self, image, layers):
        """Features of the whole ``image`` at ``layers``, written core by core (no gradient)."""
        import torch

        hw = tuple(image.shape[-2:])
        out = {}
        for core, tile in grid(hw, self.target_core, 0, self.halo):
            f = self._features(_crop(image, tile), layers)
            for l in layers:
                if l not in out:
                    c = f[l].shape[1]
                    out[l] = torch.zeros((1, c, *_feature_hw(hw, l)), dtype=torch.float32, device=image.device)
                s = _stride(l)
                y0, x0 = core[0] // s, core[2] // s
                fc = _crop(f[l], _feature_box(core, tile, l)).float()
                out[l][..., y0:y0 + fc.shape[-2], x0:x0 + fc.shape[-1]] = fc
        return out

    def _core_sums(self, f, mask):
        """A core's (C, N) features -> the sums its statistic is made of (float64 for the global total)."""
        import torch

        fm = f if mask is None else f * mask
        if self.meanstd:
            return torch.stack([fm.sum(1), (fm * f).sum(1)]).double()
        return (fm @ f.t()).double()

    def _statistic(self, sums, count):
        """Global sums and pixel count (or mask sum) -> the statistic ``losses.gram`` / ``losses.mean_std`` gives."""
        import torch

        m = sums / count
        if not self.meanstd:
            return m.float()
        mu = m[0]
        var = (m[1] - mu * mu).clamp_min(0)
        return torch.stack([mu, (var + 1e-8).sqrt()]).float()

    def _sums(self, image, masks, core, shift, layers, content=False):
        """Pass 1 over ``image``: per style layer, one sum per mask (or one without); with ``content``, also the
        content loss's numerators per content layer (in ``self._content_sq``). No gradient."""
        import torch

        hw = tuple(image.shape[-2:])
        sums: dict = {}
        sq: dict = {}
        want = tuple(dict.fromkeys(tuple(layers) + (tuple(self.content_targets) if content else ())))
        if not want:
            self._content_sq = sq
            return sums
        with torch.no_grad():
            for c, tile in grid(hw, core, shift, self.halo):
                f = self._features(_crop(image, tile), want)
                for l in layers:
                    fl = _crop(f[l], _feature_box(c, tile, l)).float().flatten(2)[0]
                    ms = [None] if masks is None else [_crop(m[l], self._global_box(c, l)).flatten() for m in masks]
                    acc = sums.setdefault(l, [0.0] * len(ms))
                    for j, m in enumerate(ms):
                        acc[j] = acc[j] + self._core_sums(fl, m)
                if content:
                    for l in self.content_targets:
                        fl = _crop(f[l], _feature_box(c, tile, l)).float()
                        tgt = _crop(self.content_targets[l], self._global_box(c, l))
                        sq[l] = sq.get(l, 0.0) + float((fl - tgt).pow(2).sum(dtype=torch.float64))
                del f
        self._content_sq = sq
        return sums

    def _global_box(self, core, layer):
        s = _stride(layer)
        y0, y1, x0, x1 = core
        return (y0 // s, -(-y1 // s), x0 // s, -(-x1 // s))

    # -- the loss of x --
    def _evaluate(self, x, shift):
        """Pass 1 on x: the global loss (float tensor), dL/d(statistic sums) per style layer and mask, and the
        content weights; all without the network's gradient."""
        import torch

        s = self.setup
        sums = self._sums(x, self.masks, self.core, shift, s.style_layers if s.style_weight else (), content=True)
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        coeffs = {}
        if s.style_weight:
            sw = s.style_weight * losses.STYLE_FACTOR
            for l, lw in zip(s.style_layers, self.style_lw):
                grads = []
                for j, acc in enumerate(sums[l]):
                    leaf = acc.detach().clone().requires_grad_(True)
                    if self.masks is None:
                        count = _count(self.hw, l)
                        pairs = list(zip(self.style_w, self.style_targets))
                    else:
                        count = self.mask_sums[j][l].double()
                        pairs = [(self.style_w[j], self.style_targets[j])] if self.style_w[j] else []
                    if not pairs:
                        grads.append(None)
                        continue
                    with torch.enable_grad():
                        stat = self._statistic(leaf, count)
                        term = sum((sw * lw * w) * losses.relative_error(stat, *tgt[l]) for w, tgt in pairs)
                        (g,) = torch.autograd.grad(term, leaf)
                    total = total + term.detach().double()
                    grads.append(g.float())
                coeffs[l] = grads
        if s.content_weight:
            for l in self.content_targets:
                total = total + (s.content_weight * self.content_lw) * self._content_sq[l] / (
                    float(self.content_norms[l]) + losses.EPS)
        return total, coeffs

    def _local(self, x):
        """Total variation and the temporal loss on the whole image (cheap, exact)."""
        s = self.setup
        xx = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        total = None
        if s.tv_weight:
            total = s.tv_weight * losses.tv_loss(xx)
        if self.temporal is not None:
            target, mask, weight = self.temporal
            t = weight * losses.temporal_loss(xx, target, mask)
            total = t if total is None else total + t
        return total

    def __call__(self, x):
        import torch

        with torch.no_grad():
            total, _ = self._evaluate(x.detach(), 0)
            local = self._local(x.detach())
        return (total.float() + (local if local is not None else 0.0)).reshape(())

    def backward(self, x, gain: float = 1.0) -> float:
        """Set ``x.grad`` to ``gain`` * dL/dx (pass 2, tile by tile) and return the loss L."""
        import torch

        s = self.setup
        shift = self.evaluations
        self.evaluations += 1
        xd = x.detach()
        total, coeffs = self._evaluate(xd, shift)
        grad = torch.zeros_like(xd)
        style_layers = s.style_layers if s.style_weight else ()
        layers = tuple(dict.fromkeys(tuple(self.content_targets) + tuple(style_layers)))
        for c, tile in grid(self.hw, self.core, shift, self.halo):
            xt = _crop(xd, tile).clone().requires_grad_(True)
            with torch.enable_grad():
                f = self._features(xt, layers)
                sur = torch.zeros((), dtype=torch.float32, device=x.device)
                for l in style_layers:
                    fl = _crop(f[l], _feature_box(c, tile, l)).float().flatten(2)[0]
                    for j, g in enumerate(coeffs[l]):
                        if g is None:
                            continue
                        # g = dL/d(sum over the picture), so the core's own sums carry the global normalisation
                        fm = fl if self.masks is None else \
                            fl * _crop(self.masks[j][l], self._global_box(c, l)).flatten()
                        if self.meanstd:
                            sur = sur + (g[0] * fm.sum(1)).sum() + (g[1] * (fm * fl).sum(1)).sum()
                        else:
                            sur = sur + (g * (fm @ fl.t())).sum()
                for l in self.content_targets:
                    fl = _crop(f[l], _feature_box(c, tile, l)).float()
                    tgt = _crop(self.content_targets[l], self._global_box(c, l))
                    sur = sur + (s.content_weight * self.content_lw) * (fl - tgt).pow(2).sum() / (
                        self.content_norms[l] + losses.EPS)
                if sur.requires_grad:
                    (sur * gain).backward()
            if xt.grad is not None:
                grad[..., tile[0]:tile[1], tile[2]:tile[3]] += xt.grad
            del f, sur, xt
        value = float(total)
        with torch.enable_grad():
            xl = xd.clone().requires_grad_(True)
            local = self._local(xl)
            if local is not None:
                (local * gain).backward()
                grad += xl.grad
                value += float(local.detach())
        x.grad = grad
        return value


def _count(hw, layer) -> float:
    h, w = _feature_hw(hw, layer)
    return float(h * w)


def plan_for(hw: tuple[int, int], style_long: float, channels: int, setup, device) -> Plan:
    """The plan ``optimize.transfer`` runs a scale with, from the memory available now; when not even the
    smallest tiles fit by the estimate, the smallest tiles anyway (the estimate is conservative)."""
    history = setup.history if setup.optimizer == "lbfgs" else 0
    plan = plan_scale(hw, style_long, channels, history, setup.tile, budget(device))
    if plan is None:
        plan = Plan(MIN_CORE, min(history, MIN_HISTORY), 0, MIN_CORE)
    return plan

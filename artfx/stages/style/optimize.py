"""The optimisation loop: coarse-to-fine scales, L-BFGS or Adam, progress and frames through callbacks.

Knows nothing about the CLI or the Context: ``transfer(...)`` takes numpy images and plain callbacks, so the
benchmark and the tests can drive it directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from artfx.stages.style import losses, tiles
from artfx.stages.style.vgg import get_network

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, the Y of YCbCr (what colors=keep keeps the chroma against)


@dataclass
class Setup:
    """Everything the loop needs, in plain values (the stage maps its Params onto this)."""

    size: int = 512
    iterations: int = 100
    optimizer: str = "lbfgs"
    lr: float = 0.02
    history: int = 100
    init: str = "content"
    content_weight: float = 1.0
    style_weight: float = 100.0
    tv_weight: float = 0.0
    content_layers: tuple = ("conv4_2",)
    style_layers: tuple = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    layer_weights: tuple = ()
    loss: str = "gram"
    style_scale: float = 1.0
    colors: str = "none"
    scales: int = 0
    start_size: int = 256
    precision: str = "auto"
    tol: float = 0.0  # relative loss decrease over the last 10 iterations below which a scale stops (0 = never)
    tile: int = 0  # tile size in px for scales with a larger long side (0 = only when a scale does not fit)
    plan: tuple = ()  # iterations at each scale, instead of schedule()'s (the benchmark's reference runs)
    vgg: str = "caffe"
    weights_file: str | None = None
    pool: str = "max"
    every: int = 0
    checkpoint_every: int = 1  # the best image so far goes to on_best after every iteration (Ctrl-C keeps it)
    style_weights: tuple = ()
    temporal_weight: float = 50.0
    video_iterations: int = 50


class OutOfMemory(Exception):
    """The device ran out of memory at ``size``; ``fits`` is the estimated largest long side that fits."""

    def __init__(self, size: int, fits: int, device: str):
        super().__init__(f"out of {device} memory at {size} px")
        self.size, self.fits, self.device = size, fits, device


# ---- sizes ------------------------------------------------------------------------------------------------
def scale_sizes(h: int, w: int, size: int, start_size: int, scales: int) -> list[tuple[int, int]]:
    """(H, W) of each scale, coarse to fine. ``scales=0``: automatic, from ``start_size`` (at most half the target
    when the target is 128 px or more) up to the target long side in steps of about sqrt(2). ``scales=1``: the
    target size only. ``size``: the result's long side; 0: the input's; negative: the input's, at most -size."""
    long = max(h, w)
    target = min(long, -size) if size < 0 else (size or long)
    start = min(start_size, target)
    if scales == 0:
        if target >= 128:  # coarse to fine even for small targets: start at most at half the size
            start = min(start, target / 2)
        scales = 1 if target <= start * 1.15 else 1 + round(2 * math.log2(target / start))
    out = []
    for k in range(scales):
        s = target if scales == 1 else start * (target / start) ** (k / (scales - 1))
        s = max(1, round(s))
        out.append((max(1, round(h * s / long)), max(1, round(w * s / long))))
    return out


def to_tensor(img: np.ndarray, device=None):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    return t.to(device) if device is not None else t


def resize(t, hw: tuple[int, int]):
    """Resize a (1, C, H, W) tensor (antialiased bicubic when shrinking), clamped to [0, 1]."""
    import torch.nn.functional as F

    if tuple(t.shape[-2:]) == tuple(hw):
        return t
    shrink = hw[0] < t.shape[-2] or hw[1] < t.shape[-1]
    return F.interpolate(t, size=hw, mode="bicubic", align_corners=False, antialias=shrink).clamp(0, 1)


def resize_long(t, long: int):
    h, w = t.shape[-2:]
    s = long / max(h, w)
    return resize(t, (max(1, round(h * s)), max(1, round(w * s))))


# ---- colour -----------------------------------------------------------------------------------------------
def luminance(img: np.ndarray) -> np.ndarray:
    return img @ np.asarray(LUMA, dtype=np.float32)


def keep_colors(styled_y: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Combine a luminance result with the content's chroma (YCbCr, BT.601): out = Y' + (content - Y_content)."""
    y_c = luminance(content)
    return np.clip(content + (styled_y - y_c)[..., None], 0.0, 1.0).astype(np.float32)


def match_colors(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Give ``style`` the mean and covariance of ``content``'s colours (linear map with symmetric square roots)."""

    def sqrtm(c, inverse=False):
        vals, vecs = np.linalg.eigh(c)
        vals = np.clip(vals, 1e-8, None)
        d = vals ** (-0.5 if inverse else 0.5)
        return (vecs * d) @ vecs.T

    s = style.reshape(-1, 3).astype(np.float64)
    c = content.reshape(-1, 3).astype(np.float64)
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = np.cov(s, rowvar=False) + 1e-5 * np.eye(3)
    cov_c = np.cov(c, rowvar=False) + 1e-5 * np.eye(3)
    a = sqrtm(cov_c) @ sqrtm(cov_s, inverse=True)
    out = (s - mu_s) @ a.T + mu_c
    return np.clip(out, 0, 1).reshape(style.shape).astype(np.float32)


def match_luminance(style_y: np.ndarray, content_y: np.ndarray) -> np.ndarray:
    """Match the style's luminance mean and standard deviation to the content's (Gatys et al., 2016)."""
    s = (style_y - style_y.mean()) / (style_y.std() + 1e-6) * content_y.std() + content_y.mean()
    return np.clip(s, 0, 1).astype(np.float32)


# ---- the loss ---------------------------------------------------------------------------------------------
class Objective:
    """The weighted Gatys loss for one scale: targets computed once, ``__call__(x)`` differentiable in x."""

    def __init__(self, net, setup: Setup, content, styles, style_weights, masks, autocast, temporal=None):
        import torch

        self.net, self.setup, self.autocast = net, setup, autocast
        self.temporal = temporal  # video: (previous result warped, mask, weight), Ruder et al.'s temporal loss
        self.stat = losses.style_statistic(setup.loss)
        self.layers = tuple(dict.fromkeys(setup.content_layers + setup.style_layers))
        lw = list(setup.layer_weights) or [1.0] * len(setup.style_layers)
        total = sum(lw)
        self.style_lw = [w / total for w in lw]
        self.content_lw = 1.0 / len(setup.content_layers) if setup.content_layers else 0.0
        with torch.no_grad():
            feats = self.features(content)
            self.content_targets = {l: feats[l].float() for l in setup.content_layers}
            self.content_norms = {l: t.pow(2).sum() for l, t in self.content_targets.items()}
            # region masks resampled to each style layer's map
            self.masks = None
            if masks is not None:
                self.masks = [
                    {l: losses.downsample_mask(m, tuple(feats[l].shape[-2:]), setup.pool) for l in setup.style_layers}
                    for m in masks
                ]
                area = [float(m.mean()) for m in masks]
                mean_w = sum(style_weights) / len(style_weights)
                self.style_w = [w / mean_w * a for w, a in zip(style_weights, area)]
            else:
                total = sum(style_weights)
                self.style_w = [w / total for w in style_weights]
            del feats
            self.style_targets = []
            for s in styles:
                f = self.features(s, setup.style_layers)
                stats = {l: self.stat(f[l]) for l in setup.style_layers}
                self.style_targets.append({l: (t, t.pow(2).sum()) for l, t in stats.items()})
                del f

    def features(self, x, layers=None):
        import torch

        layers = layers or self.layers
        if self.autocast is None:
            return self.net.features(x, layers)
        with torch.autocast(device_type=x.device.type, dtype=self.autocast):
            return self.net.features(x, layers)

    def __call__(self, x):
        return sum(self.terms(x).values())

    def terms(self, x) -> dict:
        """The weighted terms of the loss at ``x``: content, style, and tv / temporal where they are on (the
        style benchmark's evaluator reads the content and style distances from here)."""
        s = self.setup
        import torch

        feats = self.features(x)
        zero = torch.zeros((), device=x.device, dtype=torch.float32)
        content, style = zero, zero
        if s.content_weight:
            for l in s.content_layers:
                content = content + (s.content_weight * self.content_lw) * losses.content_loss(
                    feats[l], self.content_targets[l], self.content_norms[l]
                )
        if s.style_weight:
            sw = s.style_weight * losses.STYLE_FACTOR
            for l, lw in zip(s.style_layers, self.style_lw):
                f = feats[l]
                if self.masks is None:
                    stat = self.stat(f)
                    for w, tgt in zip(self.style_w, self.style_targets):
                        style = style + (sw * lw * w) * losses.relative_error(stat, *tgt[l])
                else:
                    for w, m, tgt in zip(self.style_w, self.masks, self.style_targets):
                        if w == 0:
                            continue
                        stat = self.stat(f, m[l])
                        style = style + (sw * lw * w) * losses.relative_error(stat, *tgt[l])
        out = {"content": content, "style": style}
        if s.tv_weight:
            out["tv"] = s.tv_weight * losses.tv_loss(x)
        if self.temporal is not None:
            target, mask, weight = self.temporal
            out["temporal"] = weight * losses.temporal_loss(x, target, mask)
        return out


# ---- the loop ---------------------------------------------------------------------------------------------
STALL_WINDOW = 10  # iterations over which the tolerance stop compares the loss


def stalled(trail: list[float], tol: float) -> bool:
    """Whether a scale's loss has stopped falling: the best loss of the last STALL_WINDOW iterations is less than
    ``tol`` (a fraction) below the best before them (the best, not the last: L-BFGS without a line search may
    step up once and recover). A function of the losses alone, so a replayed recipe stops where the run did."""
    if tol <= 0 or len(trail) <= STALL_WINDOW:
        return False
    before, recent = min(trail[:-STALL_WINDOW]), min(trail[-STALL_WINDOW:])
    return before - recent < tol * abs(before)


def schedule(sizes: list[tuple[int, int]], iterations: int) -> list[int]:
    """Iterations at each scale: ``iterations`` at every one. Measured at 512 px (bench_style.py, Tübingen and
    The Starry Night): the last scale decides the result. 30 or 50 iterations at the coarse scales instead of 100
    end within 1 % of the same loss, while 40 at the last instead of 100 end 9 % worse; so the coarse scales are
    cheap insurance and the last one is where the time has to go."""
    return [iterations] * len(sizes)


class Clock:
    """Time left, from the measured cost of an iteration at the current scale, scaled by pixels to the scales to
    come (VGG's cost grows with the pixel count: 0.25 s at 256x170, 1.0 s at 512x341 on the bench CPU), a tiled
    scale's pixels weighted by its tiles' cost (tiles.Plan.work: 1.86 for 4000x3000 in 1088 px tiles; measured
    2.1x, 160 s an iteration against 6.3 us a pixel untiled at 1024 px, bf16)."""

    def __init__(self, sizes: list[tuple[int, int]], plan: list[int], work: list[float] | None = None):
        import time

        self.now = time.perf_counter
        self.sizes = list(sizes)
        # cost of an iteration in untiled pixels: a tiled scale's (tiles.Plan.work) is more than its pixel count
        self.pixels = [h * w * f for (h, w), f in zip(sizes, work or [1.0] * len(sizes))]
        self.plan = list(plan)
        self.total = sum(plan)
        self.per_iteration: float | None = None  # seconds per iteration per pixel, measured at the current scale
        self.k, self.i, self.start = 0, 0, self.now()

    def begin(self, k: int, work: float | None = None) -> None:
        """Scale ``k`` starts; ``work``: its tiling's cost factor as planned now (the memory may have changed)."""
        if work is not None:
            h, w = self.sizes[k]
            self.pixels[k] = h * w * work
        self.k, self.i, self.start = k, 0, self.now()

    def tick(self, k: int, i: int, stopped: bool = False) -> None:
        """Iteration ``i`` of scale ``k`` is done; ``stopped``: the scale ends here."""
        self.i = i
        if i >= 2 or k == 0:  # the first iteration of a scale pays for its set-up: measure from the second
            self.per_iteration = (self.now() - self.start) / i / self.pixels[k]
        if stopped:
            self.total -= self.plan[k] - i
            self.plan[k] = i

    def left(self) -> float | None:
        """Seconds left, at most (the tolerance stop may end a scale sooner); None before anything is measured."""
        if self.per_iteration is None:
            return None
        work = (self.plan[self.k] - self.i) * self.pixels[self.k]
        work += sum(n * p for n, p in zip(self.plan[self.k + 1:], self.pixels[self.k + 1:]))
        return work * self.per_iteration


def choose_precision(precision: str, device) -> tuple[object, str]:
    """(autocast dtype or None for fp32, why) for ``precision`` (auto, fp32, bf16) on ``device``.

    ``auto`` runs the network under bf16 autocast where the hardware has bf16 matrix units that oneDNN or cuDNN
    use, as torch itself reports them (no CPU name list): CUDA devices with bf16, CPUs with AMX tiles or AVX-512
    BF16. Measured on this project's 2-core AVX-512 BF16 CPU (VGG-19 to conv5_1, forward and backward, one
    iteration): 512x341 px 1.9 s fp32, 1.0 s bf16; 256 px 0.41 s, 0.25 s; channels_last bought nothing there
    (1.7-2.0 s fp32, 1.05-1.2 s bf16), so it is used on CUDA only. The losses stay in fp32 (the Gram products
    take the bf16 features and accumulate in fp32, losses.gram), and the style benchmark's distances agree
    between fp32 and bf16 (scripts/bench_style.py --only precision). MPS stays fp32 until measured."""
    import torch

    if precision == "fp32":
        return None, "fp32: asked for"
    if precision == "bf16":
        return torch.bfloat16, "bf16: asked for"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bf16: this GPU has bf16 tensor cores"
        return None, "fp32: this GPU has no bf16"
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        for probe, name in (("_is_amx_tile_supported", "AMX"), ("_is_avx512_bf16_supported", "AVX-512 BF16")):
            check = getattr(cpu, probe, None)
            try:
                if check is not None and check() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
                    return torch.bfloat16, f"bf16: this CPU has {name}, which oneDNN uses (about 1.9x fp32's speed)"
            except Exception:  # an older torch without the probe
                continue
        return None, "fp32: this CPU has neither AMX nor AVX-512 BF16"
    return None, f"fp32: bf16 not measured on {device.type}"


def _estimate_fits(size_hw, device, peak_per_pixel: float | None) -> int:
    """Largest long side that should fit, from the measured bytes per pixel of an earlier scale (or VGG's
    activation count: about 1.4 kB of saved float32 activations and gradients per input pixel to conv5_1)."""
    import torch

    h, w = size_hw
    try:
        free, total = torch.cuda.mem_get_info(device)
        usable = 0.9 * total - (torch.cuda.memory_allocated(device) if peak_per_pixel is None else 0)
    except Exception:
        return max(64, int(max(h, w) * 0.7))
    bpp = peak_per_pixel or 1400.0 * 4
    pixels = max(usable, 0) / bpp
    fits = math.sqrt(pixels * max(h, w) / min(h, w))
    return int(max(64, min(fits, max(h, w) - 1)))


def transfer(
    content: np.ndarray,
    styles: list[np.ndarray],
    setup: Setup,
    *,
    device=None,
    masks: np.ndarray | None = None,
    generator=None,
    init_image: np.ndarray | None = None,
    report: Callable[[int, int, float], None] | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    on_best: Callable[[np.ndarray], None] | None = None,
    previous: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Repaint ``content`` (float32 (H, W, 3) in [0, 1]) in the style of ``styles``; returns the result at the
    target size. ``report(done, total, loss, scale=..., left=...)`` after every iteration (``scale``: "2/3
    384x256"; ``left``: seconds left, or None before it is measured; ``total`` falls when a scale stops early),
    ``on_frame(done, image)`` every ``setup.every`` iterations, ``on_best(image)`` every
    ``setup.checkpoint_every`` iterations with the best image so far (all images at the output size, float32 in
    [0, 1]).

    ``previous``: a video frame after a shot's first: (the previous result warped to this frame, at the output
    size; the flow's validity mask there). Then only the final scale runs, ``setup.video_iterations`` times,
    from the warped result (the content where the mask is 0), with the temporal loss."""
    import torch

    device = torch.device(device or "cpu")
    autocast, _ = choose_precision(setup.precision, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    net = get_network(setup.vgg, setup.weights_file, setup.pool).to(device, channels_last=cuda)
    memfmt = torch.channels_last if cuda else torch.contiguous_format

    sizes = scale_sizes(content.shape[0], content.shape[1], setup.size, setup.start_size, setup.scales)
    out_hw = sizes[-1]
    iterations = setup.iterations
    temporal = None
    if previous is not None:
        sizes, iterations = [out_hw], setup.video_iterations
        warped, valid = previous
    style_weights = list(setup.style_weights) or [1.0] * len(styles)

    gray = setup.colors == "keep"
    if gray:
        content_y = luminance(content)
        work_content = np.repeat(content_y[..., None], 3, axis=2)
        styles = [np.repeat(match_luminance(luminance(s), content_y)[..., None], 3, axis=2) for s in styles]
    else:
        work_content = content
        if setup.colors == "match":
            styles = [match_colors(s, content) for s in styles]
    content_full = to_tensor(work_content)
    styles_full = [to_tensor(s) for s in styles]
    masks_full = torch.from_numpy(masks)[:, None] if masks is not None else None
    content_out = resize(to_tensor(content), out_hw)[0].permute(1, 2, 0).numpy() if gray else None

    def finish(x) -> np.ndarray:
        """A (1, C, h, w) iterate -> float32 (H, W, 3) at the output size, colours recombined if kept."""
        with torch.no_grad():
            y = resize(x.detach().float().clamp(0, 1).to("cpu").expand(-1, 3, -1, -1), out_hw)
            img = y[0].permute(1, 2, 0).contiguous().numpy()
        if gray:
            return keep_colors(img[..., 0], content_out)
        return img.astype(np.float32, copy=True)

    if previous is not None:
        prev_t = to_tensor(luminance(warped)[..., None] if gray else warped)
        mask_t = torch.from_numpy(np.ascontiguousarray(valid, dtype=np.float32))[None, None]
        temporal = (prev_t.to(device), mask_t.to(device), setup.temporal_weight)
    plan = list(setup.plan) or schedule(sizes, iterations) if previous is None else [iterations]
    if len(plan) != len(sizes):
        raise ValueError(f"plan has {len(plan)} scales for {len(sizes)}")
    channels = 1 if gray else 3
    longs = [max(1, round(max(hw) * setup.style_scale)) for hw in sizes]  # the style image's long side per scale
    clock = Clock(sizes, plan, [tiles.plan_for(hw, long, channels, setup, device).work(hw)
                                for hw, long in zip(sizes, longs)])
    done = 0
    x = None
    best_x = None
    peak_per_pixel = None
    for k, hw in enumerate(sizes):
        try:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            c = resize(content_full, hw).to(device).contiguous(memory_format=memfmt)
            long = longs[k]
            st = [resize_long(s, long).to(device).contiguous(memory_format=memfmt) for s in styles_full]
            ms = [resize(m[None], hw).to(device) for m in masks_full] if masks_full is not None else None
            tiling = tiles.plan_for(hw, long, channels, setup, device)  # tiles when the scale does not fit
            if tiling.tiled:
                objective = tiles.TiledObjective(net, setup, c, st, style_weights, ms, autocast, temporal,
                                                 core=tiling.core, target_core=tiling.target_core)
            else:
                objective = Objective(net, setup, c, st, style_weights, ms, autocast, temporal)
            del st
            # initial image for this scale
            if k == 0:
                if temporal is not None:  # the previous result where the flow sees it, the content elsewhere
                    m = temporal[1]
                    x0 = (m * temporal[0] + (1 - m) * (c[:, :1] if gray else c)).clamp(0, 1)
                elif init_image is not None:
                    init = to_tensor(luminance(init_image)[..., None] if gray else init_image)
                    x0 = resize(init, hw).to(device)
                elif setup.init == "noise":
                    noise = torch.randn((1, 1 if gray else 3, *hw), generator=generator, dtype=torch.float32)
                    x0 = (0.5 + 0.15 * noise).clamp(0, 1).to(device)
                else:
                    x0 = c[:, :1] if gray else c
            else:
                x0 = resize(best_x.to(device), hw)
            x = x0.detach().clone().contiguous(memory_format=memfmt)
            if gray:
                x = x[:, :1].contiguous()
            x.requires_grad_(True)
            if setup.optimizer == "lbfgs":
                opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=tiling.history)
            else:
                opt = torch.optim.Adam([x], lr=setup.lr)
            best = [math.inf, None]
            # The losses are means, so the gradient per pixel shrinks as the pixel count grows; torch's L-BFGS has
            # absolute thresholds (it drops curvature pairs with y.s < 1e-10, stops at |g| < 1e-7) that then stall
            # it on large images. Optimise loss * (pixels / 256^2) instead: the same minimiser, well-scaled steps.
            gain = hw[0] * hw[1] / 65536.0

            def closure():
                opt.zero_grad(set_to_none=True)
                if tiling.tiled:  # sets x.grad tile by tile
                    value = objective.backward(x, gain)
                    loss = torch.tensor(value)
                else:
                    xx = x.expand(-1, 3, -1, -1) if gray else x
                    loss = objective(xx)
                    (loss * gain).backward()
                    value = float(loss.detach())
                if value < best[0]:
                    best[0], best[1] = value, x.detach().clone()
                return loss * gain

            trail: list[float] = []  # this scale's loss after each iteration, for the tolerance stop
            clock.begin(k, tiling.work(hw))
            for i in range(plan[k]):
                loss = opt.step(closure)
                if setup.optimizer == "adam":
                    with torch.no_grad():
                        x.clamp_(0, 1)
                done += 1
                value = float(loss.detach()) / gain
                if not math.isfinite(value):
                    raise FloatingPointError(f"the loss became {value} at iteration {done}")
                trail.append(value)
                stop = stalled(trail, setup.tol) and i + 1 < plan[k]
                clock.tick(k, i + 1, stopped=stop)
                if report is not None:
                    report(done, clock.total, value, scale=f"{k + 1}/{len(sizes)} {hw[1]}x{hw[0]}",
                           left=clock.left())
                if on_frame is not None and setup.every and done % setup.every == 0:
                    on_frame(done, finish(x))
                if on_best is not None and setup.checkpoint_every and done % setup.checkpoint_every == 0:
                    on_best(finish(best[1]))
                if stop:
                    break
            # the last update moved x to a point the closure has not scored yet: score it (forward only)
            with torch.no_grad():
                last = float(objective(x.expand(-1, 3, -1, -1) if gray else x))
            if last < best[0] or best[1] is None:
                best[0], best[1] = last, x.detach().clone()
            best_x = best[1]
            del objective, opt
            if cuda:
                peak_per_pixel = torch.cuda.max_memory_allocated(device) / (hw[0] * hw[1])
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not isinstance(exc, torch.OutOfMemoryError) and "out of memory" not in str(exc).lower():
                raise
            x = best_x = None
            if cuda:
                torch.cuda.empty_cache()
            fits = _estimate_fits(hw, device, peak_per_pixel)
            raise OutOfMemory(max(hw), fits, device.type) from None
        if on_best is not None:
            on_best(finish(best_x))
    return finish(best_x)

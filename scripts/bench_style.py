"""Benchmark: artfx's style stage against pastiche, same content, style, size and loss, in one process.

    PYTHONPATH=. .venv/bin/python scripts/bench_style.py            # 256 and 512 px, pastiche 500 iterations
    PYTHONPATH=. .venv/bin/python scripts/bench_style.py --quick    # 256 px, pastiche 150 iterations

Content: the Tübingen photo (samples/, else /work/shared/style-images/), style: The Starry Night (built in). Both
are resized once to the benchmark size (long side) and written to PNG, so that both tools read the very same
pixels. One shared evaluator scores every image: artfx's Gatys loss (content conv4_2, style conv1_1..conv5_1
with equal weights, content 1 : style 100, relative normalisation) at that size, on the image clamped to [0, 1].
pastiche is given layer weights that make its own objective equal to that evaluator (its Gram and MSE
conventions differ only by constants computed from the targets), so both tools minimise the same function; they
differ in optimiser setup (artfx: coarse to fine, ~sqrt(2) per scale) and implementation. Scores of
intermediate iterates are taken every ``--every`` iterations, outside the timed region (coarse-scale iterates of
artfx are upsampled to the full size before scoring, as a user stopping there would get).
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


def run_pastiche(cpath: Path, spath: Path, size: int, iters: int, every: int, ev: Evaluator) -> dict:
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
    setup_s = time.perf_counter() - t0
    setup_cpu = time.process_time() - c0
    mean = torch.tensor(VGG_MEAN).view(1, 3, 1, 1)

    def image() -> np.ndarray:
        x = (artist.pastiche.detach() + mean).flip(1) / 255.0
        return x[0].permute(1, 2, 0).clamp(0, 1).numpy().copy()

    trace = [(setup_s, 0, ev(image()), setup_cpu)]
    loop = loop_cpu = 0.0
    for step in range(1, iters + 1):
        t, c = time.perf_counter(), time.process_time()
        artist.draw()
        loop += time.perf_counter() - t
        loop_cpu += time.process_time() - c
        if step % every == 0 or step == iters:
            trace.append((setup_s + loop, step, ev(image()), setup_cpu + loop_cpu))
    final = ev(image())
    return dict(tool="pastiche", iters=iters, setup=setup_s, loop=loop, total=setup_s + loop, sec_it=loop / iters,
                cpu=setup_cpu + loop_cpu, final=final, trace=trace, image=image())


def run_artfx(content: np.ndarray, style: np.ndarray, setup: optimize.Setup, every: int, ev: Evaluator) -> dict:
    vgg._cache.clear()  # pay for reading the weights, as pastiche does
    spent = [0.0, 0.0]  # wall and CPU time inside the scoring callback, taken out of the clocks
    trace = []
    t0, c0 = time.perf_counter(), time.process_time()
    sizes = optimize.scale_sizes(content.shape[0], content.shape[1], setup.size, setup.start_size, setup.scales)

    def on_frame(done: int, img: np.ndarray) -> None:
        t, c = time.perf_counter(), time.process_time()
        trace.append((t - t0 - spent[0], done, ev(img), c - c0 - spent[1]))
        spent[0] += time.perf_counter() - t
        spent[1] += time.process_time() - c

    setup.every = every
    out = optimize.transfer(content, [style], setup, device="cpu", on_frame=on_frame)
    total = time.perf_counter() - t0 - spent[0]
    cpu = time.process_time() - c0 - spent[1]
    final = ev(out)
    trace.append((total, setup.iterations * len(sizes), final, cpu))
    n = setup.iterations * len(sizes)
    return dict(tool="artfx", iters=n, setup=float("nan"), loop=total, total=total, sec_it=total / n, final=final,
                cpu=cpu,
                trace=trace, image=out, scales=" ".join(str(max(s)) for s in sizes))


def time_to_reach(trace: list, target: float, column: int = 0) -> float:
    """Wall (column 0) or CPU (column 3) seconds of the first scored iterate at or below ``target``."""
    for row in trace:
        if row[2] <= target * (1 + 1e-6):
            return row[column]
    return math.inf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256 px only, pastiche 150 iterations")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="long sides to run (default 256 512)")
    ap.add_argument("--pastiche-iters", type=int, default=None, help="pastiche iterations (default 500)")
    ap.add_argument("--iters", type=int, default=None, help="artfx iterations per scale (default: the stage's)")
    ap.add_argument("--start-size", type=int, default=None, help="artfx's first scale (default: the stage's)")
    ap.add_argument("--every", type=int, default=10, help="score intermediate iterates every N iterations")
    ap.add_argument("--save", type=Path, default=None, help="directory to save the final images to")
    ap.add_argument("--pastiche-loss-scale", type=float, default=PASTICHE_LOSS_SCALE, help="see run_pastiche")
    args = ap.parse_args()
    globals()["PASTICHE_LOSS_SCALE"] = args.pastiche_loss_scale
    sizes = args.sizes or ([256] if args.quick else [256, 512])
    p_iters = args.pastiche_iters or (150 if args.quick else 500)

    import torch

    from artfx.stages.style import Params, setup_from

    defaults = setup_from(Params())
    iters = args.iters or defaults.iterations
    start = args.start_size or defaults.start_size
    cpath = content_path()
    print(f"content {cpath.name}, style starry-night; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"pastiche: {p_iters} L-BFGS iterations at full size; artfx: {iters} per scale from {start} px")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            c = optimize.resize_long(optimize.to_tensor(read_image(cpath).rgb), size)[0].permute(1, 2, 0).numpy()
            s_full = read_image(styles.resolve("starry-night")).rgb
            s = optimize.resize_long(optimize.to_tensor(s_full), size)[0].permute(1, 2, 0).numpy()
            cp, sp = Path(tmp) / f"content{size}.png", Path(tmp) / f"style{size}.png"
            save_png(c, cp)
            save_png(s, sp)
            c, s = load_png(cp), load_png(sp)  # exactly what pastiche reads
            ev = Evaluator(c, s, optimize.Setup())
            print(f"\n{size} px ({c.shape[1]}x{c.shape[0]}): content-init loss {ev(c):.3f}", flush=True)
            setup = optimize.Setup(size=0, iterations=iters, start_size=start)
            ax = run_artfx(c, s, setup, args.every, ev)
            print(f"  artfx done: {ax['total']:.1f} s ({ax['scales']}), final {ax['final']:.4f}", flush=True)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                save_png(ax["image"], args.save / f"bench_artfx_{size}.png")
            pa = run_pastiche(cp, sp, size, p_iters, args.every, ev)
            print(f"  pastiche done: {pa['total']:.1f} s, final {pa['final']:.4f}", flush=True)
            target = pa["final"]
            for r in (pa, ax):
                r["reach"] = time_to_reach(r["trace"], target)
                r["reach_cpu"] = time_to_reach(r["trace"], target, 3)
                r["size"] = size
                rows.append(r)
                if args.save:
                    args.save.mkdir(parents=True, exist_ok=True)
                    save_png(r["image"], args.save / f"bench_{r['tool']}_{size}.png")
            for label, r in (("pastiche", pa), ("artfx", ax)):
                pts = " ".join(f"{t:.0f}s:{l:.3f}" for t, _, l, _ in r["trace"][:: max(1, len(r["trace"]) // 8)])
                print(f"  {label} trace {pts}")
            summary(size, pa, ax)

    print("\n| size | tool | iterations | s/iteration | total s | CPU s | final loss "
          "| s (CPU s) to reach pastiche's final |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        its = f"{r['iters']} ({r.get('scales', 'full size')})"
        reach = "never" if math.isinf(r["reach"]) else f"{r['reach']:.1f} ({r['reach_cpu']:.1f})"
        cells = [r["size"], r["tool"], its, f"{r['sec_it']:.3f}", f"{r['total']:.1f}", f"{r['cpu']:.1f}",
                 f"{r['final']:.4f}", reach]
        print("| " + " | ".join(map(str, cells)) + " |")
    for size in sizes:
        pa = next(r for r in rows if r["size"] == size and r["tool"] == "pastiche")
        ax = next(r for r in rows if r["size"] == size and r["tool"] == "artfx")
        summary(size, pa, ax)


def summary(size: int, pa: dict, ax: dict) -> None:
    ratio = ax["reach"] / pa["reach"] if math.isfinite(ax["reach"]) and pa["reach"] > 0 else math.inf
    ratio_cpu = ax["reach_cpu"] / pa["reach_cpu"] if math.isfinite(ax["reach_cpu"]) and pa["reach_cpu"] else math.inf
    print(f"{size} px: artfx reaches pastiche's {pa['iters']}-iteration loss in {ratio:.2f}x pastiche's wall time "
          f"({ax['reach']:.1f} s vs {pa['reach']:.1f} s), {ratio_cpu:.2f}x its CPU time; final loss artfx "
          f"{ax['final']:.4f} vs pastiche {pa['final']:.4f}", flush=True)


if __name__ == "__main__":
    main()

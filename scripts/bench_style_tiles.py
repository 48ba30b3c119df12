"""Tiled style (issue 18, item 4): how close the tiled loss and gradient are to the untiled ones for each halo,
and how a tiled run compares with an untiled one, by the evaluator (untiled Objective at the result's size).

    PYTHONPATH=$PWD python scripts/bench_style_tiles.py [--size 160] [--iterations 8] [--tile 64]

Prints two tables. Times are wall clock on whatever machine runs it (tiny images: the tiled cost here is
dominated by the halo, which is most of each tile at this size).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from artfx.stages.style import optimize, tiles
from artfx.stages.style.vgg import get_network
from artfx.testing import sample_image


def halo_table(h: int, w: int, core: int, halos: list[int]) -> None:
    net = get_network()
    content = optimize.to_tensor(sample_image(h, w, seed=1))
    styles = [optimize.to_tensor(sample_image(150, 170, seed=2))]
    x0 = optimize.to_tensor(sample_image(h, w, seed=5))
    print(f"\nhalo against the untiled Objective ({w}x{h}, cores <= {core} px, "
          f"{len(tiles.grid((h, w), core))} tiles; loss=gram, tv_weight=1)")
    print(f"{'precision':>9} {'halo':>5} {'loss rel err':>13} {'grad rel err':>13} {'untiled s':>10} {'tiled s':>8}")
    for autocast, name in ((None, "fp32"), (torch.bfloat16, "bf16")):
        setup = optimize.Setup(tv_weight=1.0)
        ref = optimize.Objective(net, setup, content, styles, [1.0], None, autocast)
        x = x0.clone().requires_grad_(True)
        t = time.perf_counter()
        loss = ref(x)
        loss.backward()
        t0 = time.perf_counter() - t
        v0, g0 = float(loss.detach()), x.grad.clone()
        for halo in halos if autocast is None else [tiles.HALO]:
            obj = tiles.TiledObjective(net, setup, content, styles, [1.0], None, autocast, core=core, halo=halo)
            x = x0.clone().requires_grad_(True)
            t = time.perf_counter()
            v1 = obj.backward(x, 1.0)
            t1 = time.perf_counter() - t
            err_g = float((x.grad - g0).norm() / g0.norm())
            print(f"{name:>9} {halo:>5} {abs(v1 - v0) / v0:>13.2e} {err_g:>13.2e} {t0:>10.2f} {t1:>8.2f}")


def distances(content, style, result) -> tuple[float, float]:
    net = get_network()
    c = optimize.to_tensor(content)
    s = [optimize.resize_long(optimize.to_tensor(style), max(result.shape[:2]))]
    x = optimize.to_tensor(result)
    out = []
    with torch.no_grad():
        for cw, sw in ((0.0, 1.0), (1.0, 0.0)):
            out.append(float(optimize.Objective(net, optimize.Setup(content_weight=cw, style_weight=sw), c, s,
                                                [1.0], None, None)(x)))
    return out[0], out[1]


def run_table(size: int, iterations: int, tile: int) -> None:
    content = sample_image(round(size * 0.75), size, seed=1)
    style = sample_image(size, size, seed=2)
    print(f"\ntiled run against untiled ({content.shape[1]}x{content.shape[0]}, default scales, "
          f"{iterations} iterations each)")
    print(f"{'run':>12} {'precision':>9} {'style dist':>11} {'content dist':>13} {'vs untiled':>17} {'time s':>7}")
    for precision in ("fp32", "bf16"):
        base = None
        for t in (0, tile):
            setup = optimize.Setup(size=size, start_size=size // 2, iterations=iterations, tile=t,
                                   precision=precision)
            start = time.perf_counter()
            out = optimize.transfer(content, [style], setup)
            secs = time.perf_counter() - start
            s, c = distances(content, style, out)
            if base is None:
                base, rel = (s, c), ""
            else:
                rel = f"{s / base[0] - 1:+.1%} / {c / base[1] - 1:+.1%}"
            name = "untiled" if t == 0 else f"tile={t}"
            print(f"{name:>12} {precision:>9} {s:>11.5f} {c:>13.5f} {rel:>17} {secs:>7.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    halo_table(128, 160, 48, [0, 16, 32, 48, 64, 80, 96])
    run_table(a.size, a.iterations, a.tile)
    np.set_printoptions()


if __name__ == "__main__":
    main()

"""Benchmark the primitive stage against fogleman/primitive's published figures on this project's machines.

    PYTHONPATH=. .venv/bin/python scripts/bench_primitive.py            # full table (about 10-20 min on 2 cores)
    PYTHONPATH=. .venv/bin/python scripts/bench_primitive.py --quick    # 100 triangles only

For each image, shape type and seed, one run of the largest shape count is made per thread count; the figures
for smaller counts are read off the same run at that shape (the search draws its random numbers shape by shape,
so the first 50 shapes of a 200-shape run are exactly the 50-shape picture; the time is the time at which that
shape was placed). RMSE is sqrt(mean over pixels and R, G, B of (render - target)^2) on the 0-255 scale, the
256 px render against the 256 px target, median of the seeds. The numba JIT is warmed up before any timing.

fogleman/primitive is a Go program (not installable from PyPI), so its figures are quoted from
/work/shared/anchors.md (measured on the same machines and files with its default search budget), not re-run here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from artfx.stage import Context  # noqa: E402
from artfx.stages.primitive import stage  # noqa: E402

IMAGES = {"astronaut_256": "astronaut_256.png", "chelsea_256": "chelsea_256.png"}
# fogleman/primitive RMSE (anchors.md): image -> shape -> {count: rmse}
FOGLEMAN = {
    "astronaut_256": {"triangle": {50: 34.4, 100: 28.6, 200: 23.6}, "ellipse": {50: 36.0, 100: 29.2, 200: 22.8},
                      "combo": {50: 33.7, 100: 27.4, 200: 21.9}},
    "chelsea_256": {"triangle": {50: 16.6, 100: 13.8, 200: 11.7}, "ellipse": {50: 17.3, 100: 14.5, 200: 11.6},
                    "combo": {50: 16.6, 100: 13.5, 200: 11.1}},
}
FOGLEMAN_TIME = {("astronaut_256", "triangle", 100): (10.1, 5.9), ("astronaut_256", "ellipse", 100): (15.7, 8.3)}


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def run(image: np.ndarray, shape: str, n: int, seed: int, workers: int, extra: dict
        ) -> tuple[dict, dict, dict, np.ndarray]:
    """One run; returns ({count: wall s}, {count: CPU s}, {count: rmse}) for every count up to n, and the picture.
    CPU seconds (this process, all threads) show the work done when other jobs share the machine."""
    times: dict[int, float] = {}
    cpu: dict[int, float] = {}
    rmses: dict[int, float] = {}
    t0 = time.perf_counter()
    c0 = time.process_time()

    def on_progress(_stage, done, _total, metrics):
        times[int(done)] = time.perf_counter() - t0
        cpu[int(done)] = time.process_time() - c0
        rmses[int(done)] = float(metrics["rmse"])

    ctx = Context(seed=seed, device="cpu", on_progress=on_progress)
    params = stage.Params(n=n, shape=shape, workers=workers, **extra)
    t0 = time.perf_counter()
    c0 = time.process_time()
    out = stage.apply(image, params, ctx)
    return times, cpu, rmses, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 triangles only")
    ap.add_argument("--images", default=",".join(IMAGES), help="comma-separated: astronaut_256,chelsea_256")
    ap.add_argument("--shapes", default="triangle,ellipse,combo")
    ap.add_argument("--counts", default="50,100,200")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--alpha", type=float, default=None, help="override the stage's alpha (0 = solved per shape)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a stage parameter, e.g. --set restarts=4 (repeatable)")
    ap.add_argument("--bench-dir", default=str(ROOT.parent / "shared" / "bench-images"))
    a = ap.parse_args()
    shapes = ["triangle"] if a.quick else a.shapes.split(",")
    counts = [100] if a.quick else [int(c) for c in a.counts.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    extra = {} if a.alpha is None else {"alpha": a.alpha}
    extra.update(kv.split("=", 1) for kv in a.set)
    defaults = stage.Params(**extra)

    # warm-up: compile (or load from the numba cache) every kernel outside the timings
    warm = load(Path(a.bench_dir) / IMAGES["chelsea_256"])[:40, :40]
    for s in shapes:
        run(warm, s, 2, 0, 1, {**extra, "restarts": 2, "candidates": 5, "failures": 5})
        run(warm, s, 2, 0, 2, {**extra, "restarts": 2, "candidates": 5, "failures": 5})
        run(warm, s, 2, 0, 2, {**extra, "restarts": 2, "candidates": 5, "failures": 5, "method": "shrink"})

    print(f"primitive benchmark: alpha={defaults.alpha} candidates={defaults.candidates} "
          f"restarts={defaults.restarts} failures={defaults.failures}, median of {a.seeds} seeds; "
          "fogleman/primitive figures quoted from anchors.md (Go binary, not re-run here)")
    hdr = ("| image | shape | n | " + " | ".join(f"s ({t} thr)" for t in threads) + " | CPU s (1 thr)"
           + " | RMSE | fogleman RMSE | fogleman s (1/2 thr) | RMSE vs fogleman |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    nmax = max(counts)
    for name in a.images.split(","):
        img = load(Path(a.bench_dir) / IMAGES[name])
        for s in shapes:
            t_by = {t: {c: [] for c in counts} for t in threads}
            c_by = {c: [] for c in counts}
            r_by = {c: [] for c in counts}
            for seed in range(a.seeds):
                pics = []
                for t in threads:
                    times, cpu, rmses, pic = run(img, s, nmax, seed, t, extra)
                    pics.append(pic)
                    for c in counts:
                        t_by[t][c].append(times[c])
                        if t == 1:
                            c_by[c].append(cpu[c])
                    if t == threads[0]:
                        for c in counts:
                            r_by[c].append(rmses[c])
                assert all(np.array_equal(pics[0], p) for p in pics), "thread count changed the picture"
            for c in counts:
                r = statistics.median(r_by[c])
                fr = FOGLEMAN[name][s].get(c)
                ft = FOGLEMAN_TIME.get((name, s, c))
                cells = [f"{statistics.median(t_by[t][c]):.2f}" for t in threads]
                cells.append(f"{statistics.median(c_by[c]):.2f}" if c_by[c] else "-")
                print(f"| {name} | {s} | {c} | " + " | ".join(cells) + f" | {r:.2f} | {fr if fr else '-'} | "
                      + (f"{ft[0]} / {ft[1]}" if ft else "-") + " | "
                      + (f"{100 * (r / fr - 1):+.1f}%" if fr else "-") + " |", flush=True)


if __name__ == "__main__":
    main()

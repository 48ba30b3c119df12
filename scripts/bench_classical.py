"""Benchmark the quantize and slic stages against the libraries users would script instead, in one run.

    python scripts/bench_classical.py            # everything (full k-means on 12 MP: minutes)
    python scripts/bench_classical.py --quick    # full k-means on 12 MP only for k=16, once

Per method and setting: seconds (median of --repeats runs), peak memory, and quality.
- quantize: mean CIEDE2000 to the input (skimage.color.deltaE_ciede2000 on a fixed random subsample of pixels,
  the same for every method; --de-sample) and PSNR (all pixels, 8-bit-rounded output); colours in the output.
- slic: PSNR of the mean-colour mosaic to the input, number of segments.
Timing: artfx stages are timed on the whole ``apply`` (float32 image in, float32 image out, side outputs
included), after one warm-up call (numba JIT / cache load). Peers are timed on their own call only, with their
natural input already prepared (uint8 for Pillow, float for scikit-learn/scikit-image), mosaic/recolouring not
timed: that favours the peers.
CPU seconds: the process's CPU time during the call (all threads; for one-thread rows it is about what the wall
time would be on an idle machine, which the shared dev machine rarely is).
Peak memory: the rise of the process's peak resident set (VmHWM, reset through /proc/self/clear_refs before each
call) over the resident set before it, which counts numba, OpenCV and NumPy allocations alike. Where that reset
is not allowed, tracemalloc's peak (NumPy allocations only) is shown with a "t" suffix.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMAGES = [
    ROOT.parent / "shared" / "bench-images" / "photo_1200x900_noise3.png",
    ROOT.parent / "shared" / "bench-images" / "photo_4000x3000_noise3.png",
]


# ---- measurement ---------------------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _can_reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_kb("VmHWM")
        return True
    except OSError:
        return False


RSS_PEAK = _can_reset_peak()


def measure(fn, repeats: int):
    """(median seconds, median process CPU seconds, peak MB string, last result)."""
    times = []
    cpus = []
    peak = 0.0
    result = None
    for _ in range(repeats):
        result = None
        if RSS_PEAK:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            base = _status_kb("VmRSS")
        else:
            tracemalloc.start()
        t = time.perf_counter()
        c = time.process_time()
        result = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        if RSS_PEAK:
            peak = max(peak, (_status_kb("VmHWM") - base) / 1024)
        else:
            peak = max(peak, tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
    return statistics.median(times), statistics.median(cpus), f"{peak:.0f}" + ("" if RSS_PEAK else "t"), result


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    a8 = np.rint(np.clip(a, 0, 1) * 255)
    b8 = np.rint(np.clip(b, 0, 1) * 255)
    mse = np.mean((a8 - b8) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


class DeltaE:
    def __init__(self, image: np.ndarray, n: int, seed: int = 0):
        from skimage.color import rgb2lab

        flat = image.reshape(-1, 3)
        n = min(n, len(flat))
        self.idx = np.random.default_rng(seed).choice(len(flat), n, replace=False)
        self.ref = rgb2lab(flat[self.idx][None].astype(np.float64))

    def __call__(self, out: np.ndarray) -> float:
        from skimage.color import deltaE_ciede2000, rgb2lab

        q = np.rint(np.clip(out.reshape(-1, 3)[self.idx], 0, 1) * 255) / 255
        return float(deltaE_ciede2000(self.ref, rgb2lab(q[None])).mean())


def n_colours(out: np.ndarray) -> int:
    q = np.rint(np.clip(out, 0, 1) * 255).astype(np.uint32).reshape(-1, 3)
    return len(np.unique((q[:, 0] << 16) | (q[:, 1] << 8) | q[:, 2]))


def mosaic(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    lab = labels.ravel()
    m = lab.max() + 1
    cnt = np.maximum(np.bincount(lab, minlength=m), 1)
    cols = np.stack([np.bincount(lab, weights=image[..., c].ravel(), minlength=m) / cnt for c in range(3)], -1)
    return cols[labels].astype(np.float32)


# ---- methods ---------------------------------------------------------------------------------------------------
def artfx_stage(name: str, threads: int = 0, **params):
    """The stage's apply; ``threads`` > 0 forces numba's threads for the call (by default the stages choose per
    call: one thread for small images or when the machine's load leaves no core free)."""
    import numba

    from artfx.stage import Context

    mod = __import__(f"artfx.stages.{name}", fromlist=["stage"])
    st = mod.stage
    p = st.Params(**params)

    def run(image):
        ctx = Context(seed=0, device="cpu")
        before = numba.get_num_threads()
        if threads:
            numba.set_num_threads(threads)
        try:
            out = st.apply(image, p, ctx)
        finally:
            numba.set_num_threads(before)
        return out, ctx.get("labels")

    return run


def sklearn_kmeans(k: int, sample: int | None):
    from sklearn.cluster import KMeans

    def run(image):
        X = image.reshape(-1, 3)
        if sample is None:
            km = KMeans(n_clusters=k, n_init=1, random_state=0).fit(X)
            labels = km.labels_
        else:
            idx = np.random.default_rng(0).choice(len(X), sample, replace=False)
            km = KMeans(n_clusters=k, n_init=1, random_state=0).fit(X[idx])
            labels = km.predict(X)
        return km.cluster_centers_.astype(np.float32)[labels].reshape(image.shape)

    return run


def pillow_quantize(k: int, method_name: str):
    from PIL import Image

    method = getattr(Image.Quantize, method_name)

    def run(u8):
        return Image.fromarray(u8).quantize(colors=k, method=method, dither=Image.Dither.NONE)

    return run


def skimage_slic(n: int):
    from skimage.segmentation import slic

    def run(image):
        return slic(image, n_segments=n, compactness=10, channel_axis=-1, start_label=0)

    return run


def grid_labels(n: int):
    def run(image):
        h, w = image.shape[:2]
        step = math.sqrt(h * w / n)
        gy, gx = max(1, round(h / step)), max(1, round(w / step))
        y, x = np.mgrid[0:h, 0:w]
        return ((y * gy // h) * gx + x * gx // w).astype(np.int32)

    return run


# ---- the benchmark ---------------------------------------------------------------------------------------------
def load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.float32) / np.float32(255.0)


def bench_quantize(image, name, ks, args, rows):
    from PIL import features

    de = DeltaE(image, args.de_sample)
    u8 = np.rint(image * 255).astype(np.uint8)
    mp = image.shape[0] * image.shape[1] / 1e6
    for k in ks:
        methods = [
            ("artfx quantize (lab)", lambda k=k: artfx_stage("quantize", k=k), "float"),
            ("artfx quantize (lab), 1 thread", lambda k=k: artfx_stage("quantize", 1, k=k), "float"),
            ("artfx quantize (rgb)", lambda k=k: artfx_stage("quantize", k=k, space="rgb"), "float"),
            ("sklearn KMeans 100k sample + predict", lambda k=k: sklearn_kmeans(k, 100_000), "float"),
        ]
        full_ok = mp < 5 or not args.quick or k == 16
        if full_ok:
            methods.append(("sklearn KMeans all pixels", lambda k=k: sklearn_kmeans(k, None), "float"))
        methods.append(("Pillow median cut", lambda k=k: pillow_quantize(k, "MEDIANCUT"), "u8"))
        methods.append(("Pillow fast octree", lambda k=k: pillow_quantize(k, "FASTOCTREE"), "u8"))
        if features.check("libimagequant"):
            methods.append(("Pillow libimagequant", lambda k=k: pillow_quantize(k, "LIBIMAGEQUANT"), "u8"))
        for label, make, kind in methods:
            fn = make()
            reps = args.repeats
            if "all pixels" in label and mp > 5:
                reps = 1 if args.quick else args.repeats
            arg = u8 if kind == "u8" else image
            if label.startswith("artfx"):
                fn(image[:64, :64])  # warm-up: numba cache load / JIT
            sec, cpu, peak, res = measure(lambda: fn(arg), reps)
            if kind == "u8":
                out = np.asarray(res.convert("RGB"), np.float32) / 255
            elif isinstance(res, tuple):
                out = res[0]
            else:
                out = res
            rows.append(
                ("quantize", name, f"k={k}", label, sec, cpu, peak, f"dE00 {de(out):.2f}", f"PSNR {psnr(image, out):.2f}",
                 f"{n_colours(out)} colours", reps)
            )
            print_row(rows[-1])


def bench_slic(image, name, ns, args, rows):
    for n in ns:
        methods = [
            ("artfx slic", lambda n=n: artfx_stage("slic", n=n), True),
            ("artfx slic, 1 thread", lambda n=n: artfx_stage("slic", 1, n=n), True),
            ("skimage slic (Lab, channel_axis)", lambda n=n: skimage_slic(n), False),
            ("grid of squares (floor)", lambda n=n: grid_labels(n), False),
        ]
        for label, make, is_stage in methods:
            fn = make()
            if is_stage:
                fn(image[:64, :64])
            sec, cpu, peak, res = measure(lambda: fn(image), args.repeats)
            if is_stage:
                out, labels = res
            else:
                labels = res
                out = mosaic(image, labels)
            rows.append(
                ("slic", name, f"n={n}", label, sec, cpu, peak, f"PSNR {psnr(image, out):.2f}",
                 f"{int(labels.max()) + 1} segments", "", args.repeats)
            )
            print_row(rows[-1])


def print_row(r):
    stage, img, setting, method, sec, cpu, peak, q1, q2, q3, reps = r
    print(
        f"| {stage} | {img} | {setting} | {method} | {sec:.3f} | {cpu:.3f} | {peak} | {q1} | {q2} | {q3} | {reps} |",
        flush=True,
    )


def main():
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:  # noqa: SIM102
        # a fixed mmap threshold: large blocks are mapped and unmapped, not kept in the heap, so that the peak
        # resident set of one call is its own (glibc otherwise raises the threshold after the first big free)
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576", MALLOC_TRIM_THRESHOLD_="1048576")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*", type=Path, default=IMAGES)
    ap.add_argument("--quick", action="store_true", help="full k-means on >5 MP only for k=16, once")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="numba threads (0 = numba's default)")
    ap.add_argument("--only", choices=["quantize", "slic"], default=None)
    ap.add_argument("--de-sample", type=int, default=200_000, help="pixels sampled for mean CIEDE2000")
    ap.add_argument("--ks", default="8,16,64")
    ap.add_argument("--ns", default="200,1000,5000")
    args = ap.parse_args()

    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    print(
        f"# bench_classical: {os.cpu_count()} CPUs, numba {numba.__version__} threads={numba.get_num_threads()} "
        f"(layer {numba.config.THREADING_LAYER}), load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, peak memory = "
        f"{'RSS peak rise (VmHWM)' if RSS_PEAK else 'tracemalloc peak (t)'} in MB"
    )
    print("| stage | image | setting | method | wall s (median) | CPU s (median) | peak MB | quality | quality | notes "
          "| runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for path in args.images:
        image = load(path)
        name = f"{image.shape[1]}x{image.shape[0]}"
        if args.only in (None, "quantize"):
            bench_quantize(image, name, [int(k) for k in args.ks.split(",")], args, rows)
        if args.only in (None, "slic"):
            bench_slic(image, name, [int(n) for n in args.ns.split(",")], args, rows)
    try:
        import fast_slic  # noqa: F401
    except ImportError:
        print("\nfast-slic: not installed (its sdist fails to build here: setup_requires cython via easy_install)")
    print(f"# load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Benchmark ``--executor ray`` against ``--executor local`` on this machine: throughput, start-up, memory.

    python scripts/bench_scale.py                        # 24 photos through quantize,slic; 8 through style
    python scripts/bench_scale.py --quick                # 8 and 2, style with 2 iterations per scale
    python scripts/bench_scale.py --style-iterations 6   # the style step's iterations per scale

Inputs: 24 crops of the photos in shared/bench-images (three per photo, different places and shapes), resized to
256 px on the long side; the style job takes the first 8. Each job runs twice, each time in a fresh process: the
local executor (this process, one after the other, numba and torch on every core), then ``--executor ray`` with
no address, i.e. a Ray instance started on this machine, one worker per core (2 here, one thread each); the style
job once more with one worker of two threads (``ARTFX_RAY_WORKER_CPUS=2``), as many as the local run has.

Reported per job:
- wall: the job as ``runner.execute`` runs it (ray: cluster start, workers, work, results written; not Python's
  own start nor Ray's shutdown), and throughput in files a second; the ratio is ray's throughput over local's;
- start-up: seconds from the job's start until every worker is ready (cluster started, actors up, stages
  imported), and the throughput ratio with it taken away (what a long job approaches);
- peak memory: the local process's peak resident set; for ray, the driver's and each worker's;
- same bytes: whether every output of the ray run equals the local run's, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "bench-images"

JOBS = {"quantize,slic": "quantize:k=8,slic:n=200", "style": "style:iterations={it}"}


def make_inputs(folder: Path, count: int, size: int = 256) -> Path:
    """``count`` crops of the bench photos (three per photo: left square, centre landscape, right portrait)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(p for p in IMAGES.glob("*.png"))
    made = 0
    for round_ in range(3):
        for photo in photos:
            if made == count:
                return folder
            with Image.open(photo) as im:
                im = im.convert("RGB")
                w, h = im.size
                boxes = [(0, 0, min(w, h), min(w, h)), (w // 8, h // 4, w - w // 8, h - h // 4),
                         (w // 2, 0, w, h)]
                crop = im.crop(boxes[round_])
                crop.thumbnail((size, size), Image.LANCZOS)
                crop.save(folder / f"{made:02d}-{photo.stem}.png")
            made += 1
    return folder


def child(spec: str, executor: str, src: str, out: str) -> None:
    """One measurement, in a process of its own: prints its numbers as JSON on the last line."""
    sys.path.insert(0, str(ROOT))
    import artfx

    began = time.perf_counter()
    artfx.run(spec, src, output=out, executor=executor, seed=0, resume=False)
    wall = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stats = {"wall": wall, "peak": peak}
    if executor == "ray":
        from artfx.executors.ray import LAST_JOB

        stats.update(LAST_JOB)
    print(json.dumps(stats))


def measure(spec: str, executor: str, src: Path, out: Path, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", spec, executor, str(src), str(out)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"{executor} run of {spec} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same_bytes(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return bool(files) and all((a / f).read_bytes() == (b / f).read_bytes() for f in files) and \
        len(files) == sum(1 for p in b.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 and 2 photos, style with 2 iterations per scale")
    ap.add_argument("--style-iterations", type=int, default=6, help="style iterations per scale (default 6)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    counts = {"quantize,slic": 8, "style": 2} if args.quick else {"quantize,slic": 24, "style": 8}
    iterations = 2 if args.quick else args.style_iterations
    mb = 2**20
    rows = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="artfx-bench-scale-") as tmp:
        photos = make_inputs(Path(tmp, "in"), max(counts.values()))
        for job, count in counts.items():
            src = Path(tmp, f"in-{count}")
            src.mkdir(exist_ok=True)
            for p in sorted(photos.iterdir())[:count]:
                (src / p.name).write_bytes(p.read_bytes())
            spec = JOBS[job].format(it=iterations)
            local = measure(spec, "local", src, Path(tmp, f"{job}-local"))
            # style also with one worker of two threads, as many as the local run: torch's sums then agree
            setups = [("", {})] + ([(", 1 worker x 2 threads", {"ARTFX_RAY_WORKER_CPUS": "2"})] if job == "style"
                                   else [])
            for k, (what, env) in enumerate(setups):
                out = Path(tmp, f"{job}-ray{k}")
                ray = measure(spec, "ray", src, out, env)
                rate_local, rate_ray = count / local["wall"], count / ray["wall"]
                steady = count / max(ray["wall"] - ray["start_s"], 1e-6)
                rows.append([f"{job} ({spec}){what}", count, f"{local['wall']:.1f}", f"{ray['wall']:.1f}",
                             f"{rate_ray / rate_local:.2f}x", f"{ray['start_s']:.1f}",
                             f"{steady / rate_local:.2f}x", f"{local['peak'] / mb:.0f}", f"{ray['peak'] / mb:.0f}",
                             " / ".join(f"{p / mb:.0f}" for p in ray["peak_rss"]),
                             "yes" if same_bytes(Path(tmp, f"{job}-local"), out) else "NO"])
                print(f"{job}{what}: local {local['wall']:.1f} s, ray {ray['wall']:.1f} s", file=sys.stderr)
    head = ["job", "files", "local s", "ray s", "throughput ray/local", "ray start-up s",
            "ratio without start-up", "local peak MB", "ray driver MB", "ray worker MB", "same bytes"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print(f"\n{os.cpu_count()} cores; load average {load:.1f} before the run, {os.getloadavg()[0]:.1f} after",
          file=sys.stderr)


if __name__ == "__main__":
    main()

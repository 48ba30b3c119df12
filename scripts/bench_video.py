"""Benchmark: each stage on real footage, every frame on its own (``--temporal off``) against temporal mode.

    PYTHONPATH=. .venv/bin/python scripts/bench_video.py                 # everything (about 20 min on 2 cores)
    PYTHONPATH=. .venv/bin/python scripts/bench_video.py --only quantize,slic --skip-memory

Footage: /work/shared/bench-video/bigbuckbunny.mp4 (132 frames, 1280x720, 25 fps; see its SOURCES.md). Both modes
run in this process through the same code the command line uses (a :class:`artfx.video.Sequence` per mode, the
stage's own parameters unchanged), the temporal mode's time including its optical flow. Figures per stage:

- warping error (Lai et al. 2018): mean squared difference, [0, 1] scale, between each output frame and the
  previous output frame warped by the flow of the input frames, over the pixels that flow sees (frame pairs
  across a scene cut are left out); the input's own figure is the floor;
- the stage's quality: quantize mean CIEDE2000 to the input, slic mosaic PSNR, style the Gatys style loss of the
  result (artfx's normalised loss, the stage's layers) against the painting at the result's size;
- seconds per frame (the independent run is the still-image run of each frame).

Memory: peak RSS of ``artfx pipeline quantize`` (a fresh process) on a synthetic 720p clip of 10 s and of 2 min,
made here by panning across the footage's frames, at ``--mem-fps`` frames per second (5 by default: 600 frames for
the long clip, to keep the run within minutes on 2 cores; the point is that memory does not grow with length).
A GIF of a few frames, independent | temporal side by side, goes to docs/video-style.gif.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from artfx.pipeline import Pipeline  # noqa: E402
from artfx.stage import Context, Run  # noqa: E402
from artfx.video import flow, media  # noqa: E402
from artfx.video.temporal import Sequence  # noqa: E402

CLIP = Path("/work/shared/bench-video/bigbuckbunny.mp4")


def load_frames(n: int, width: int) -> list[np.ndarray]:
    import cv2

    out = []
    for i, f in enumerate(media.read_frames(CLIP)):
        if i >= n:
            break
        h = round(f.shape[0] * width / f.shape[1])
        out.append(cv2.resize(f, (width, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255)
    return out


def run_mode(spec: str, frames: list[np.ndarray], temporal: bool) -> tuple[list[np.ndarray], float]:
    pipeline = Pipeline.from_spec(spec)
    seq = Sequence(enabled=temporal)
    outs, t0 = [], time.perf_counter()
    for i, f in enumerate(frames):
        seq.begin(i, f)
        outs.append(pipeline.run(f, Context(run=Run(seed=0, device="cpu", sequence=seq))))
    return outs, (time.perf_counter() - t0) / len(frames)


def mean_de00(ins, outs) -> float:
    from skimage.color import deltaE_ciede2000, rgb2lab

    return float(np.mean([deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).mean() for a, b in zip(ins, outs)]))


def mean_psnr(ins, outs) -> float:
    return float(np.mean([10 * np.log10(1 / max(((a - b) ** 2).mean(), 1e-12)) for a, b in zip(ins, outs)]))


def style_loss(outs, params) -> float:
    import torch

    from artfx.stages.style import losses, optimize, setup_from, styles, vgg
    from artfx.io import read_image

    setup = setup_from(params)
    setup.content_weight, setup.tv_weight, setup.style_weight = 0.0, 0.0, 1.0 / losses.STYLE_FACTOR
    net = vgg.get_network(setup.vgg, None, setup.pool)
    painting = optimize.to_tensor(read_image(styles.resolve(params.image[0])).rgb)
    values = []
    with torch.no_grad():
        for out in outs:
            x = optimize.to_tensor(out)
            style = optimize.resize_long(painting, max(out.shape[:2]))
            values.append(float(optimize.Objective(net, setup, x, [style], [1.0], None, None)(x)))
    return float(np.mean(values))


def bench_stage(name: str, spec: str, frames: list[np.ndarray], quality) -> dict:
    import cv2

    row = {"stage": name, "spec": spec, "frames": len(frames), "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}"}
    for mode, temporal in (("independent", False), ("temporal", True)):
        outs, spf = run_mode(spec, frames, temporal)
        h, w = outs[0].shape[:2]
        ins = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) if f.shape[:2] != (h, w) else f for f in frames]
        row[mode] = {"warp": flow.sequence_warping_error(ins, outs), "quality": quality(ins, outs), "s_frame": spf}
        row[mode + "_frames"] = outs
        print(f"  {name} {mode}: {row[mode]}", flush=True)
    row["input_warp"] = flow.sequence_warping_error(ins, ins)
    return row


def memory(seconds: float, fps: int, tmp: Path) -> int:
    """Peak RSS (kB) of `artfx pipeline quantize` on a synthetic 720p clip of ``seconds`` at ``fps``."""
    import av

    src = [f for f in media.read_frames(CLIP)]
    clip = tmp / f"long-{seconds:g}s.mp4"
    out = av.open(str(clip), "w")
    s = out.add_stream("libx264", rate=fps)
    s.width, s.height, s.pix_fmt, s.options = 1280, 720, "yuv420p", {"preset": "ultrafast", "crf": "23"}
    for i in range(int(seconds * fps)):  # loop the footage, panning 4 px a frame (wrapping around)
        frame = np.roll(src[i % len(src)], -4 * i, axis=1)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts, vf.time_base = i, Fraction(1, fps)
        for p in s.encode(vf):
            out.mux(p)
    for p in s.encode(None):
        out.mux(p)
    out.close()
    code = ("import resource, sys; from artfx.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "pipeline", "quantize", str(clip), "-o", str(tmp / "o.mp4"),
                        "-q"], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"memory run failed: {r.stderr}")
    return int(r.stdout.split()[-1])


def side_by_side_gif(a: list[np.ndarray], b: list[np.ndarray], dest: Path, fps: int) -> None:
    from artfx.io.files import atomic_write

    def write(tmp: Path) -> None:
        writer = media.GifWriter(tmp, Fraction(fps))
        for x, y in zip(a, b):
            gap = np.ones((x.shape[0], 4, 3), np.float32)
            u8 = np.clip(np.rint(np.concatenate([x, gap, y], axis=1) * 255), 0, 255).astype(np.uint8)
            writer.write(u8)
        writer.close()

    atomic_write(dest, write)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="quantize,slic,style")
    ap.add_argument("--frames", type=int, default=132, help="frames for quantize and slic")
    ap.add_argument("--width", type=int, default=640, help="width for quantize and slic")
    ap.add_argument("--style-frames", type=int, default=48)
    ap.add_argument("--style-width", type=int, default=320)
    ap.add_argument("--style-iterations", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for style (1 is fastest on shared cores)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--mem-fps", type=int, default=5)
    ap.add_argument("--gif", default=str(ROOT / "docs" / "video-style.gif"))
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    only = args.only.split(",")
    rows = []
    if "quantize" in only or "slic" in only:
        frames = load_frames(args.frames, args.width)
        if "quantize" in only:
            rows.append(bench_stage("quantize", "quantize:k=8", frames, mean_de00))
        if "slic" in only:
            rows.append(bench_stage("slic", "slic:n=600", frames, mean_psnr))
    if "style" in only:
        import torch

        torch.set_num_threads(args.threads)
        spec = f"style:size=0:iterations={args.style_iterations}:image=starry-night"
        params = Pipeline.from_spec(spec).steps[0].params
        frames = load_frames(args.style_frames, args.style_width)
        row = bench_stage("style", spec, frames, lambda ins, outs: style_loss(outs, params))
        rows.append(row)
        n = min(16, len(frames))
        side_by_side_gif(row["independent_frames"][:n], row["temporal_frames"][:n], Path(args.gif), 8)
        print(f"wrote {args.gif}")
    print()
    print("| stage | frames | warping error: input / independent / temporal (ratio) | quality: independent / "
          "temporal (ratio) | s/frame: independent / temporal (ratio) |")
    print("|---|---|---|---|---|")
    figures = []
    for r in rows:
        i, t = r["independent"], r["temporal"]
        figures.append({k: v for k, v in r.items() if not k.endswith("_frames")})
        print(f"| {r['stage']} ({r['spec']}) | {r['frames']} at {r['size']} | {r['input_warp']:.5f} / "
              f"{i['warp']:.5f} / {t['warp']:.5f} ({t['warp'] / i['warp']:.2f}x) | {i['quality']:.4g} / "
              f"{t['quality']:.4g} ({t['quality'] / i['quality']:.3f}x) | {i['s_frame']:.3f} / {t['s_frame']:.3f} "
              f"({t['s_frame'] / i['s_frame']:.2f}x) |")
    if not args.skip_memory:
        with tempfile.TemporaryDirectory() as d:
            short = memory(10, args.mem_fps, Path(d))
            long = memory(120, args.mem_fps, Path(d))
        print(f"\npeak RSS, quantize on 720p at {args.mem_fps} fps: 10 s clip {short / 1024:.0f} MB, 2 min clip "
              f"{long / 1024:.0f} MB ({long / short:.3f}x)")
        figures.append({"memory_kb": {"10s": short, "120s": long, "fps": args.mem_fps}})
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()

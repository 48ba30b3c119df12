"""Benchmark: each stage on real and camera-like footage, every frame on its own (``--temporal off``) against
temporal mode.

    PYTHONPATH=. .venv/bin/python scripts/bench_video.py                 # everything (about 25 min on 2 cores)
    PYTHONPATH=. .venv/bin/python scripts/bench_video.py --only quantize,slic --skip-memory
    PYTHONPATH=. .venv/bin/python scripts/bench_video.py --only quantize,slic --clips camera,handheld --skip-memory

Clips (``--clips``):

- ``bunny``: /work/shared/bench-video/bigbuckbunny.mp4 (132 frames, 1280x720, 25 fps; see its SOURCES.md), a
  clean render: its own warping error is tiny, so any flicker of the output shows;
- ``camera``: the same frames as a camera would deliver them: sensor-like noise (shot noise growing with the
  signal, read noise, correlated a little across neighbours and channels, fresh every frame) and a low-bitrate
  H.264 encode (1.5 Mbit/s at 640x360, scaled with the area), made here by scripts/make_clip.py's
  ``camera_like``: its own warping error is about 5 times the render's (1.1e-3 against 0.2e-3);
- ``handheld``: a hand-held pan over /work/shared/bench-images/photo_1200x900.png (a slow pan with shake and a
  little roll, motion blur from a half-frame shutter), with the same noise and encode (make_clip.py's
  ``handheld``).

Real camera footage differs from the render in exactly these ways (noise, compression, blur): every pixel
changes a little from frame to frame even where the picture does not, and a stage that follows its input
closely flickers with it. Each figure therefore stands beside the input's own warping error, its floor.

Both modes run in this process through the same code the command line uses (a :class:`artfx.video.Sequence` per
mode, the stage's own parameters unchanged), the temporal mode's time including its optical flow. Figures per
stage and clip:

- warping error (Lai et al. 2018): mean squared difference, [0, 1] scale, between each output frame and the
  previous output frame warped by the flow of the input frames, over the pixels that flow sees (frame pairs
  across a scene cut are left out); the input's own figure is the floor;
- the stage's quality: quantize mean CIEDE2000 to the input, slic mosaic PSNR, style the Gatys style loss of the
  result (artfx's normalised loss, the stage's layers) against the painting at the result's size; and for
  quantize and slic the mean CIEDE2000 to the input ("distance"), the same for both stages;
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
PHOTO = Path("/work/shared/bench-images/photo_1200x900.png")
CLIPS = ("bunny", "camera", "handheld")
CAMERA = {"kbps": 1500, "shot": 0.006}  # the camera-like clips' H.264 bitrate (at 640x360) and shot-noise variance


def load_frames(n: int, width: int) -> list[np.ndarray]:
    import cv2

    out = []
    for i, f in enumerate(media.read_frames(CLIP)):
        if i >= n:
            break
        h = round(f.shape[0] * width / f.shape[1])
        out.append(cv2.resize(f, (width, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255)
    return out


def clip_frames(name: str, n: int, width: int) -> list[np.ndarray]:
    """The frames (float32 in [0, 1]) of one of CLIPS, ``width`` px wide."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_clip

    kbps = round(CAMERA["kbps"] * (width / 640) ** 2)
    if name == "bunny":
        return load_frames(n, width)
    if name == "camera":
        return make_clip.camera_like(load_frames(n, width), seed=1, kbps=kbps, shot=CAMERA["shot"])
    if name == "handheld":
        from artfx.io import read_image

        frames = make_clip.handheld(read_image(PHOTO).rgb, n, width, seed=2)
        return make_clip.camera_like(frames, seed=2, kbps=kbps, shot=CAMERA["shot"])
    raise SystemExit(f"unknown clip {name!r}: {', '.join(CLIPS)}")


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


def flow_pairs(frames: list[np.ndarray]) -> list:
    """The input's flow pairs (None across a cut), computed once per clip and shared by every figure."""
    pairs = [None]
    for a, b in zip(frames, frames[1:]):
        pair = flow.estimate(a, b)
        pairs.append(None if pair.cut else pair)
    return pairs


def warping_error(outs: list[np.ndarray], pairs: list) -> float:
    """flow.sequence_warping_error with the input's flow computed once (``pairs``)."""
    errors = [flow.warping_error(outs[i - 1], outs[i], pairs[i]) for i in range(1, len(outs)) if pairs[i]]
    return float(np.mean(errors)) if errors else 0.0


def bench_stage(name: str, spec: str, frames: list[np.ndarray], quality, clip: str = "bunny", pairs=None,
                distance: bool = False) -> dict:
    import cv2

    row = {"stage": name, "spec": spec, "clip": clip, "frames": len(frames),
           "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}"}
    ins = frames
    for mode, temporal in (("independent", False), ("temporal", True)):
        outs, spf = run_mode(spec, frames, temporal)
        h, w = outs[0].shape[:2]
        ins = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) if f.shape[:2] != (h, w) else f for f in frames]
        same = ins[0].shape == frames[0].shape and pairs is not None
        warp = warping_error(outs, pairs) if same else flow.sequence_warping_error(ins, outs)
        row[mode] = {"warp": warp, "quality": quality(ins, outs), "s_frame": spf}
        if distance:
            row[mode]["distance"] = row[mode]["quality"] if quality is mean_de00 else mean_de00(ins, outs)
        row[mode + "_frames"] = outs
        print(f"  {clip} {name} {mode}: {row[mode]}", flush=True)
    same = ins[0].shape == frames[0].shape and pairs is not None
    row["input_warp"] = warping_error(ins, pairs) if same else flow.sequence_warping_error(ins, ins)
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
    ap.add_argument("--clips", default=",".join(CLIPS), help="clips for quantize and slic (style: the bunny)")
    ap.add_argument("--frames", type=int, default=132, help="frames for quantize and slic")
    ap.add_argument("--width", type=int, default=640, help="width for quantize and slic")
    ap.add_argument("--quantize", default="quantize:k=8", help="the quantize steps benchmarked (a;b for several)")
    ap.add_argument("--slic", default="slic:n=600", help="the slic steps benchmarked (a;b for several)")
    ap.add_argument("--kbps", type=int, default=CAMERA["kbps"], help="camera-like clips: H.264 bitrate at 640x360")
    ap.add_argument("--shot", type=float, default=CAMERA["shot"], help="camera-like clips: shot-noise variance")
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
    CAMERA.update(kbps=args.kbps, shot=args.shot)
    rows = []
    if "quantize" in only or "slic" in only:
        for clip in args.clips.split(","):
            frames = clip_frames(clip, args.frames, args.width)
            pairs = flow_pairs(frames)
            for spec in args.quantize.split(";") if "quantize" in only else []:
                rows.append(bench_stage("quantize", spec, frames, mean_de00, clip, pairs, True))
            for spec in args.slic.split(";") if "slic" in only else []:
                rows.append(bench_stage("slic", spec, frames, mean_psnr, clip, pairs, True))
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
    print("| clip | stage | frames | warping error x1000: input / independent / temporal (temporal / independent) "
          "| quality: independent / temporal (ratio) | distance (mean dE00 to the input): independent / temporal "
          "(ratio) | s/frame: independent / temporal (ratio) |")
    print("|---|---|---|---|---|---|---|")
    figures = []
    for r in rows:
        i, t = r["independent"], r["temporal"]
        figures.append({k: v for k, v in r.items() if not k.endswith("_frames")})
        dist = (f"{i['distance']:.3g} / {t['distance']:.3g} ({t['distance'] / i['distance']:.3f}x)"
                if "distance" in i else "-")
        print(f"| {r['clip']} | {r['stage']} ({r['spec']}) | {r['frames']} at {r['size']} | "
              f"{1000 * r['input_warp']:.3f} / {1000 * i['warp']:.3f} / {1000 * t['warp']:.3f} "
              f"({t['warp'] / i['warp']:.2f}x) | {i['quality']:.4g} / {t['quality']:.4g} "
              f"({t['quality'] / i['quality']:.3f}x) | {dist} | {i['s_frame']:.3f} / {t['s_frame']:.3f} "
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

"""Videos, GIFs and photo sequences: round trips, temporal coherence per stage, resume after a kill, scene cuts,
and bad input. Every clip is made here: a photo from samples/ panned across a few frames, so the true motion is
known (about 3 px right and 1 px down per frame)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artfx.video import flow
from artfx.video.temporal import Sequence

av = pytest.importorskip("av")
ROOT = Path(__file__).resolve().parents[1]


def pan_frames(n=12, w=64, h=48, photo="chelsea.png", dx=3, dy=1, x0=20, y0=20):
    img = np.asarray(Image.open(ROOT / "samples" / photo).convert("RGB"))
    return [np.ascontiguousarray(img[y0 + dy * i: y0 + dy * i + h, x0 + dx * i: x0 + dx * i + w]) for i in range(n)]


def write_clip(path: Path, frames, fps=12, audio=False) -> Path:
    """An H.264 clip (near-lossless), with a 440 Hz tone as AAC when ``audio``."""
    out = av.open(str(path), "w")
    v = out.add_stream("libx264", rate=fps)
    v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    v.options = {"crf": "1"}
    a = out.add_stream("aac", rate=44100) if audio else None
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(f, format="rgb24")
        vf.pts = i
        vf.time_base = Fraction(1, fps)
        for p in v.encode(vf):
            out.mux(p)
    if a is not None:
        samples = int(44100 * len(frames) / fps)
        t = np.arange(samples) / 44100
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        af.sample_rate, af.pts = 44100, 0
        for p in a.encode(af):
            out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    out.close()
    return path


def probe(path: Path):
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames = sum(1 for _ in c.decode(vs))
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return frames, (vs.codec_context.width, vs.codec_context.height), vs.average_rate, bool(c.streams.audio)


def png_frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame-*.png"))]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "pan.mp4", pan_frames(), audio=True)


# ---- round trips --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_video_round_trip_keeps_frames_size_fps_and_audio(cli, clip, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    r = cli("pipeline", "quantize:k=6", clip, "-o", out, "-q")
    assert r.returncode == 0, r.err
    assert probe(out) == (12, (64, 48), 12, True)
    assert not list(tmp_path.glob(".*artfx-work"))  # the work folder is gone


def test_gif_and_frame_folder_outputs(cli, clip, tmp_path):
    r = cli("pipeline", "quantize:k=4", clip, "-o", tmp_path / "out.gif", "-q")
    assert r.returncode == 0, r.err
    gif = Image.open(tmp_path / "out.gif")
    assert gif.n_frames == 12 and gif.size == (64, 48) and gif.info["duration"] in (80, 90)  # centiseconds
    r = cli("pipeline", "quantize:k=4", clip, "-o", f"{tmp_path / 'frames'}/", "-q", "--depth", "16")
    assert r.returncode == 0, r.err
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names[0] == "frame-000001.png" and names[-2:] == ["frame-000012.png", "recipe.json"]
    import cv2

    assert cv2.imread(str(tmp_path / "frames" / "frame-000001.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_photo_folder_becomes_one_animation_and_folder_output_stays_a_batch(cli, tmp_path):
    burst = tmp_path / "burst"
    burst.mkdir()
    for i, f in enumerate(pan_frames(5)):
        Image.fromarray(f).save(burst / f"img{i}.png")
    r = cli("pipeline", "quantize:k=4", burst, "-o", tmp_path / "burst.mp4", "--fps", "5", "-q")
    assert r.returncode == 0, r.err
    assert probe(tmp_path / "burst.mp4") == (5, (64, 48), 5, False)
    r = cli("pipeline", "quantize:k=4", burst, "-o", tmp_path / "stills", "-q")
    assert r.returncode == 0, r.err
    assert sorted(p.name for p in (tmp_path / "stills").iterdir()) == [f"img{i}.png" for i in range(5)]


def test_animated_gif_in(cli, tmp_path):
    frames = pan_frames(6)
    Image.fromarray(frames[0]).save(tmp_path / "in.gif", save_all=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:]], duration=100)
    r = cli("pipeline", "slic:n=20", tmp_path / "in.gif", "-o", tmp_path / "out.mp4", "-q")
    assert r.returncode == 0, r.err
    assert probe(tmp_path / "out.mp4")[:3] == (6, (64, 48), 10)


# ---- flow and the temporal view -----------------------------------------------------------------------------
def test_flow_finds_the_pan_and_the_entering_border():
    a, b = [f.astype(np.float32) / 255 for f in pan_frames(2, w=128, h=96)]
    pair = flow.estimate(a, b)
    inner = (slice(12, -12), slice(12, -12))
    assert np.median(pair.backward[inner][..., 0]) == pytest.approx(3, abs=0.3)  # b(x) was at x + 3 in a
    assert np.median(pair.backward[inner][..., 1]) == pytest.approx(1, abs=0.3)
    assert pair.mask[inner].mean() > 0.9 and pair.mask[:, -2:].mean() < 0.5  # new picture enters at the right
    warped = flow.warp(a, pair.backward)
    assert np.abs(warped - b)[inner].mean() < 0.02 < np.abs(a - b)[inner].mean()
    t = Sequence()  # warp() of another size: a half-size image moves by half the vectors
    t.begin(0, a)
    t.record(0, a, a)
    t.begin(1, b)
    view = t.for_step(0)
    import cv2

    ha, hb = (cv2.resize(x, (64, 48), interpolation=cv2.INTER_AREA) for x in (a, b))
    half = view.warp(ha)
    assert half.shape == (48, 64, 3)
    assert np.abs(half - hb)[6:-6, 6:-6].mean() < 0.5 * np.abs(ha - hb)[6:-6, 6:-6].mean()


def test_a_cut_resets_the_state(cli, tmp_path):
    frames = pan_frames(6) + pan_frames(6, photo="astronaut.png", x0=100, y0=100)
    seq = Sequence()
    for i, f in enumerate(frames):
        seq.begin(i, f.astype(np.float32) / 255)
        view = seq.for_step(0)
        assert view.shot_start == (i in (0, 6)) and view.cut == (i == 6)
        assert ("seen" in view.state) == (i not in (0, 6))
        view.state["seen"] = i
        seq.record(0, f, f)
    assert seq.cuts == [6]
    # through a run: quantize keeps one palette per shot, and a new one after the cut
    clip = write_clip(tmp_path / "cut.mp4", frames)
    r = cli("pipeline", "quantize:k=4", clip, "-o", f"{tmp_path / 'q'}/", "-q")
    assert r.returncode == 0, r.err
    colours = [set(map(tuple, f.reshape(-1, 3))) for f in png_frames(tmp_path / "q")]
    first, second = set().union(*colours[:6]), set().union(*colours[6:])
    assert len(first) <= 4 and len(second) <= 4 and not first & second


# ---- temporal coherence, stage by stage -----------------------------------------------------------------------
@pytest.fixture
def one_torch_thread():
    """Tiny images: one thread is as fast, and far faster when other processes load the cores."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("spec, ratio", [
    ("quantize:k=6", 0.5),
    ("slic:n=60", 0.8),
    # measured on this clip: quantize 0.01, slic 0.10, style 0.55, primitive 0.49 (margins for other machines)
    ("style:size=48:iterations=6:video_iterations=4:image=great-wave", 0.75),
    ("primitive:n=30:candidates=30:restarts=2:refine=20:work_size=48", 0.7),
])
def test_temporal_mode_lowers_the_warping_error(cli, tmp_path, spec, ratio, one_torch_thread):
    frames = pan_frames(8, w=96, h=64)
    clip = write_clip(tmp_path / "pan.mp4", frames)
    errors = {}
    for mode in ("off", "on"):
        r = cli("pipeline", spec, clip, "-o", f"{tmp_path / mode}/", "--temporal", mode, "-q", "--seed", "1")
        assert r.returncode == 0, r.err
        out = png_frames(tmp_path / mode)
        ins = [np.asarray(Image.fromarray(f).resize(out[0].shape[1::-1], Image.BILINEAR)) for f in frames]
        errors[mode] = flow.sequence_warping_error(ins, out)
    assert errors["on"] < ratio * errors["off"], errors


# ---- resume ----------------------------------------------------------------------------------------------------
KILLER = '''
import os, signal
import numpy as np
from pydantic import Field
from artfx.stage import Params

class KillParams(Params):
    at: int = Field(-1, description="frame at which the process kills itself, once (marker file)")

class Killer:
    name = "killer"
    summary = "Dies at a frame (a test plugin)."
    Params = KillParams

    def apply(self, image, params, ctx):
        marker = os.environ.get("ARTFX_TEST_KILL")
        if ctx.temporal is not None and ctx.temporal.index == params.at and marker and os.path.exists(marker):
            os.remove(marker)
            os.kill(os.getpid(), signal.SIGKILL)
        return image.copy()

stage = Killer()
'''


def test_resume_after_a_killed_run_gives_the_same_frames(tmp_path):
    plugin = tmp_path / "plugin"
    (plugin / "artfx_killer").mkdir(parents=True)
    (plugin / "artfx_killer" / "__init__.py").write_text(KILLER)
    info = plugin / "artfx_killer-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: artfx-killer\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [artfx.stages]
        killer = artfx_killer:stage
    """))
    clip = write_clip(tmp_path / "pan.mp4", pan_frames(14))
    before = digest(clip)
    marker = tmp_path / "kill-now"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(ROOT)]), "ARTFX_TEST_KILL": str(marker)}

    def run(dest: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "artfx", "pipeline", "quantize:k=5,slic:n=30,killer:at=9",
                               str(clip), "-o", f"{dest}/", "--seed", "4"], capture_output=True, env=env,
                              timeout=300, text=True)

    marker.write_text("")
    killed = run(tmp_path / "resumed")
    assert killed.returncode == -9
    work = tmp_path / ".resumed.artfx-work"
    assert (work / "frame-000009.png").exists() and not (tmp_path / "resumed").exists()
    resumed = run(tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing from frame" in resumed.stderr and not work.exists()
    straight = run(tmp_path / "straight")
    assert straight.returncode == 0 and "continuing" not in straight.stderr
    a, b = png_frames(tmp_path / "resumed"), png_frames(tmp_path / "straight")
    assert len(a) == len(b) == 14
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert digest(clip) == before


# ---- bad input -------------------------------------------------------------------------------------------------
def _no_output_left(folder: Path, *names: str) -> None:
    left = [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name in names]
    assert not left, left


def test_broken_videos_fail_in_one_line_and_leave_nothing(cli, clip, tmp_path):
    good = clip.read_bytes()
    cases = {
        "corrupt.mp4": bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)),
        "truncated.mp4": good[: len(good) // 2],
    }
    empty = av.open(str(tmp_path / "empty.mp4"), "w")  # a video stream with no frames
    s = empty.add_stream("libx264", rate=12)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    empty.start_encoding()
    empty.close()
    # an unsupported codec: the sample-entry fourcc of the H.264 track changed to one no decoder knows
    at = good.index(b"avc1", good.index(b"stsd"))
    cases["codec.mp4"] = good[:at] + b"zzz9" + good[at + 4:]
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    for name in [*cases, "empty.mp4"]:
        src = tmp_path / name
        before = digest(src)
        r = cli("pipeline", "quantize", src, "-o", tmp_path / f"out-{name}")
        assert r.returncode == 1, (name, r.err)
        assert r.err.count("\n") == 1 and r.err.startswith("artfx: error:"), (name, r.err)
        assert digest(src) == before
    _no_output_left(tmp_path, *[f"out-{n}" for n in [*cases, "empty.mp4"]])


def test_usage_errors_before_any_work(cli, clip, tmp_path):
    for dest in ("still.png", "still.jpg"):
        r = cli("pipeline", "quantize", clip, "-o", tmp_path / dest)
        assert r.returncode == 2 and "cannot hold a video" in r.err, r.err
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    r = cli("pipeline", "quantize", clip, "-o", tmp_path / "o.mp4", "--work-dir", blocker / "work")
    assert r.returncode == 2 and "work folder" in r.err, r.err
    r = cli("pipeline", "quantize", clip, "-o", clip)
    assert r.returncode == 2 and "overwrite the input" in r.err, r.err
    r = cli("pipeline", "quantize", tmp_path / "missing.mp4", "-o", tmp_path / "o.mp4")
    assert r.returncode == 2 and "does not exist" in r.err
    photo = tmp_path / "p.png"
    Image.fromarray(pan_frames(1)[0]).save(photo)
    r = cli("pipeline", "quantize", photo, "-o", tmp_path / "o.mp4")
    assert r.returncode == 2 and "needs a video" in r.err, r.err
    _no_output_left(tmp_path, "o.mp4", "still.png", "still.jpg")


# ---- what a fresh review found -------------------------------------------------------------------------------
def test_a_work_folder_on_another_file_system_still_delivers_the_frames(cli, clip, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system to put the work folder on")
    work = shm / f"artfx-test-{os.getpid()}"
    try:
        r = cli("pipeline", "quantize:k=4", clip, "-o", f"{tmp_path / 'frames'}/", "--work-dir", work, "-q")
        assert r.returncode == 0, r.err
        assert len(png_frames(tmp_path / "frames")) == 12 and not work.exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_frames_folder_is_not_mixed_with_other_files(cli, clip, tmp_path):
    out = tmp_path / "frames"
    long_clip = write_clip(tmp_path / "long.mp4", pan_frames(16))
    assert cli("pipeline", "quantize:k=4", long_clip, "-o", f"{out}/", "-q").returncode == 0
    assert len(png_frames(out)) == 16
    assert cli("pipeline", "quantize:k=3", clip, "-o", f"{out}/", "-q").returncode == 0
    assert len(png_frames(out)) == 12  # the earlier run's frames 13-16 are gone
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "frame-000001.png").write_bytes(b"a user's own file")
    r = cli("pipeline", "quantize:k=3", clip, "-o", f"{mine}/", "-q")
    assert r.returncode == 2 and "holds files artfx did not write" in r.err
    assert (mine / "frame-000001.png").read_bytes() == b"a user's own file"

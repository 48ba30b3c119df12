"""Videos as real footage and real folders come: variable frame rates, display rotation, tiny and odd sizes, a
window of a clip, photos of mixed sizes, damaged files, and the same bytes for the same command. Every clip is
made here with PyAV, a few frames small."""

from __future__ import annotations

import ctypes
import hashlib
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")
ROOT = Path(__file__).resolve().parents[1]
RATE = 44100


def clicks(seconds: float, at=None) -> np.ndarray:
    """Mono float32 audio: silence with a 5 ms click (1 kHz) at every whole second (or at the times ``at``)."""
    n = int(RATE * seconds)
    sound = np.zeros(n, np.float32)
    for t in (range(int(seconds) + 1) if at is None else at):
        i = int(t * RATE)
        k = np.arange(min(n - i, int(0.005 * RATE)))
        sound[i: i + len(k)] = 0.8 * np.sin(2 * np.pi * 1000 * k / RATE)
    return sound


def write_video(path: Path, frames, times=None, fps=20, audio=None, codec="libx264", rotation=None) -> Path:
    """A clip of uint8 frames; ``times`` (seconds, one per frame, plus the end) make it variable-rate (each
    frame's packet carries its duration); ``audio`` mono float32 at 44.1 kHz, as AAC."""
    out = av.open(str(path), "w")
    v = out.add_stream(codec, rate=fps)
    v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    v.options = {"crf": "1"} if codec == "libx264" else {"crf": "4", "b": "0"}
    if rotation is not None:
        v.set_display_rotation(rotation)
    tb = Fraction(1, 1000)
    if times is not None:
        v.codec_context.time_base = tb
    a = out.add_stream("aac", rate=RATE) if audio is not None else None
    packets = []
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        if times is None:
            vf.pts, vf.time_base = i, Fraction(1, fps)
        else:
            vf.pts, vf.time_base = round(times[i] * 1000), tb
        packets += v.encode(vf)
    packets += v.encode(None)
    if times is not None:
        ends = {round(times[i] * 1000): round(times[i + 1] * 1000) for i in range(len(frames))}
        for p in packets:  # each frame's own duration, the last one's included
            start = round(p.pts * p.time_base * 1000)
            p.duration = int(Fraction(ends[start] - start, 1000) / p.time_base)
    for p in packets:
        out.mux(p)
    if a is not None:
        af = av.AudioFrame.from_ndarray(audio[None], format="fltp", layout="mono")
        af.sample_rate, af.pts = RATE, 0
        for p in [*a.encode(af), *a.encode(None)]:
            out.mux(p)
    out.close()
    return path


def decode(path: Path):
    """(frames uint8, their times in seconds, the stream's end in seconds) of a video's first stream."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames, times = [], []
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.pts * f.time_base))
    step = times[1] - times[0] if len(times) > 1 else 0.0
    return frames, times, times[-1] + step


def decode_audio(path: Path) -> tuple[np.ndarray, float]:
    """(mono samples, the time of the first sample in seconds)."""
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        chunks, first = [], None
        for f in c.decode(a):
            if first is None:
                first = float(f.pts * f.time_base) if f.pts is not None else 0.0
            chunks.append(f.to_ndarray().reshape(len(f.layout.channels), -1)[0] if f.format.is_planar
                          else f.to_ndarray().reshape(-1, len(f.layout.channels))[:, 0])
        rate = a.rate
    return np.concatenate(chunks).astype(np.float32), first, rate


def onsets(sound: np.ndarray, first: float, rate: int) -> list[float]:
    """Times (s) where a click starts: the sound rises above 0.3 after at least 0.3 s of quiet."""
    loud = np.flatnonzero(np.abs(sound) > 0.3)
    out, last = [], -1e9
    for i in loud:
        if i - last > 0.3 * rate:
            out.append(first + i / rate)
        last = i
    return out


def flat(value: int, h=48, w=64) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def png_frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame-*.png"))]


# ---- 5: variable frame rate -------------------------------------------------------------------------------------
def test_a_variable_frame_rate_clip_lasts_as_long_as_the_input_and_its_sound_stays_in_sync(cli, tmp_path):
    # every second: a white flash (100 ms) then grey frames of 50, 50, 400, 50, 250 and 100 ms; a click on the
    # flash. Played at a constant 20 fps (its declared rate) frame after frame, it lasted 1.05 s instead of 3.
    pattern = [0.1, 0.05, 0.05, 0.4, 0.05, 0.25, 0.1]
    frames, times, t = [], [], 0.0
    for second in range(3):
        for k, d in enumerate(pattern):
            frames.append(flat(255 if k == 0 else 40 + 20 * k))
            times.append(round(t, 3))
            t += d
    times.append(round(t, 3))
    clip = write_video(tmp_path / "vfr.mkv", frames, times, fps=20, audio=clicks(3.0))
    r = cli("pipeline", "quantize:k=4", clip, "-o", tmp_path / "out.mp4", "-q", "--temporal", "off")
    assert r.returncode == 0, r.err
    out, when, end = decode(tmp_path / "out.mp4")
    assert end == pytest.approx(3.0, abs=0.06)
    flashes = [t for i, (t, f) in enumerate(zip(when, out)) if f.mean() > 200 and (i == 0 or out[i - 1].mean() < 200)]
    assert flashes == pytest.approx([0.0, 1.0, 2.0], abs=0.06)
    sound, first, rate = decode_audio(tmp_path / "out.mp4")
    assert onsets(sound, first, rate) == pytest.approx([0.0, 1.0, 2.0], abs=0.06)


def test_a_gif_keeps_each_frames_duration(cli, tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    frames = [Image.fromarray(np.full((16, 16, 3), c, np.uint8)) for c in colours]
    frames[0].save(tmp_path / "in.gif", save_all=True, append_images=frames[1:], duration=[100, 1000, 100, 1000])
    r = cli("pipeline", "quantize:k=2", tmp_path / "in.gif", "-o", tmp_path / "out.mp4", "-q")
    assert r.returncode == 0, r.err
    out, when, end = decode(tmp_path / "out.mp4")
    assert end == pytest.approx(2.2, abs=0.01) and len(out) == 22  # 10 fps: the frames' common step
    nearest = [int(np.argmin([np.abs(f.reshape(-1, 3).mean(0) - c).sum() for c in colours])) for f in out]
    assert nearest == [0] + [1] * 10 + [2] + [3] * 10


# ---- 6: rotation --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rotation, corner", [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right")])
def test_a_rotated_video_is_made_upright(cli, tmp_path, rotation, corner):
    """A phone's clip: landscape pictures with a display rotation. PyAV's ``rotation`` is counter-clockwise, so
    the top-left mark is shown bottom-left after 90, top-right after -90 (as phones write portrait clips)."""
    frame = np.full((32, 64, 3), 90, np.uint8)
    frame[:8, :8] = (255, 0, 0)
    clip = write_video(tmp_path / "phone.mp4", [frame] * 4, fps=10, rotation=rotation)
    r = cli("pipeline", "quantize:k=3", clip, "-o", f"{tmp_path / 'out'}/", "-q")
    assert r.returncode == 0, r.err
    out = png_frames(tmp_path / "out")
    assert len(out) == 4
    h, w = out[0].shape[:2]
    assert (h, w) == ((32, 64) if rotation == 180 else (64, 32))
    red = (out[0][..., 0] > 200) & (out[0][..., 1] < 80)
    ys, xs = np.nonzero(red)
    where = ("top" if ys.mean() < h / 2 else "bottom") + "-" + ("left" if xs.mean() < w / 2 else "right")
    assert where == corner


# ---- 7: tiny and odd sizes, --fps range ------------------------------------------------------------------------------
def test_tiny_videos_and_gifs_run_with_the_flow_they_can_have(cli, tmp_path):
    rng = np.random.default_rng(0)
    one = write_video(tmp_path / "one.webm", [rng.integers(0, 256, (1, 1, 3), dtype=np.uint8) for _ in range(4)],
                      codec="libvpx-vp9", fps=10)
    for dest in ("one.webm", "one.gif"):
        r = cli("pipeline", "quantize:k=2,slic:n=4", one, "-o", tmp_path / f"out-{dest}", "-q")
        assert r.returncode == 0, r.err
    assert decode(tmp_path / "out-one.webm")[0][0].shape == (1, 1, 3)
    gif = [Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)) for _ in range(5)]
    gif[0].save(tmp_path / "tiny.gif", save_all=True, append_images=gif[1:], duration=80)
    r = cli("pipeline", "slic:n=3,quantize:k=3", tmp_path / "tiny.gif", "-o", tmp_path / "out-tiny.gif", "-q")
    assert r.returncode == 0, r.err
    out = Image.open(tmp_path / "out-tiny.gif")
    assert out.size == (4, 4) and out.n_frames == 5


def test_odd_sizes_are_kept_or_padded_with_one_warning(cli, tmp_path):
    frames = [np.ascontiguousarray(np.tile(np.linspace(0, 255, 17, dtype=np.uint8)[None, :, None], (9, 1, 3)))] * 6
    clip = write_video(tmp_path / "odd.webm", frames, codec="libvpx-vp9", fps=10)
    r = cli("pipeline", "quantize:k=4", clip, "-o", tmp_path / "out.webm")
    assert r.returncode == 0, r.err
    assert decode(tmp_path / "out.webm")[0][0].shape == (9, 17, 3) and "even" not in r.err
    r = cli("pipeline", "quantize:k=4", clip, "-o", tmp_path / "out.mp4")
    assert r.returncode == 0, r.err
    out = decode(tmp_path / "out.mp4")[0]
    assert out[0].shape == (10, 18, 3) and len(out) == 6
    assert r.err.count("H.264 needs even sizes") == 1 and "17x9" in r.err and "18x10" in r.err
    assert np.abs(out[0][:, 17].astype(int) - out[0][:, 16]).max() <= 12  # the last column repeated


@pytest.mark.parametrize("fps", ["0.0001", "0", "-3", "5000"])
def test_fps_has_a_range(cli, tmp_path, fps):
    clip = write_video(tmp_path / "c.mp4", [flat(100)] * 3)
    r = cli("pipeline", "quantize", clip, "-o", tmp_path / "o.mp4", "--fps", fps)
    assert r.returncode == 2 and "--fps must be" in r.err and r.err.count("\n") == 1, r.err
    r = cli("pipeline", "quantize:k=2", clip, "-o", tmp_path / "o.gif", "--fps", "0.5", "-q")
    assert r.returncode == 0, r.err
    assert Image.open(tmp_path / "o.gif").info["duration"] == 2000


# ---- 8: same command, same bytes ---------------------------------------------------------------------------------
def _mess_up_the_heap(seed: int) -> None:
    """Allocate and free buffers of random bytes, as a long-running process does: memory that a library reads
    before writing then holds something else."""
    rng = np.random.default_rng(seed)
    held = [ctypes.create_string_buffer(bytes(rng.integers(0, 256, 64, dtype=np.uint8)) * int(n // 64))
            for n in rng.integers(1000, 1_000_000, 120)]
    del held


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv"])
def test_the_writer_gives_the_same_bytes_for_the_same_frames(tmp_path, suffix):
    from artfx.video import media

    img = np.asarray(Image.open(ROOT / "samples" / "chelsea.png").convert("RGB"))
    clip = [np.ascontiguousarray(img[20 + i: 20 + i + 90, 10 + 3 * i: 10 + 3 * i + 160]) for i in range(44)]
    digests = set()
    for seed in range(3):
        _mess_up_the_heap(seed)
        dest = tmp_path / f"out{seed}{suffix}"
        writer = media.VideoWriter(dest, suffix, 160, 90, Fraction(25), 80, comment="{}")
        for f in clip:
            writer.write(f)
        writer.close()
        digests.add(hashlib.sha256(dest.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_the_same_command_gives_the_same_bytes(cli, tmp_path):
    img = np.asarray(Image.open(ROOT / "samples" / "chelsea.png").convert("RGB"))
    frames = [np.ascontiguousarray(img[20 + i: 20 + i + 48, 10 + 3 * i: 10 + 3 * i + 64]) for i in range(10)]
    clip = write_video(tmp_path / "pan.mp4", frames, fps=10, audio=clicks(1.0))
    for suffix in (".mp4", ".webm"):
        got = []
        for k in range(2):
            dest = tmp_path / f"run{k}{suffix}"
            r = cli("pipeline", "quantize:k=6,slic:n=20", clip, "-o", dest, "-q")
            assert r.returncode == 0, r.err
            got.append(dest.read_bytes())
        assert got[0] == got[1], suffix


# ---- 9: a window of a clip --------------------------------------------------------------------------------------
def test_start_and_duration_cut_the_picture_and_the_sound(cli, tmp_path):
    frames = [flat(20 + 6 * i) for i in range(30)]  # 3 s at 10 fps, each frame its own grey
    clip = write_video(tmp_path / "c.mp4", frames, fps=10, audio=clicks(3.0, at=[0.5, 1.5, 2.7]))
    r = cli("pipeline", "quantize:k=2", clip, "-o", tmp_path / "cut.mp4", "--start", "0:01", "--duration", "1.5",
            "-q", "--temporal", "off")
    assert r.returncode == 0, r.err
    out, when, end = decode(tmp_path / "cut.mp4")
    assert len(out) == 15 and end == pytest.approx(1.5, abs=0.01)
    assert np.abs(out[0].astype(int).mean() - frames[10].mean()) < 3  # the frame shown at 1.0 s comes first
    sound, first, rate = decode_audio(tmp_path / "cut.mp4")
    assert onsets(sound, first, rate) == pytest.approx([0.5], abs=0.04)  # the click at 1.5 s; the one at 2.7 s is cut
    assert len(sound) / rate == pytest.approx(1.5, abs=0.06)
    r = cli("pipeline", "quantize:k=2", clip, "-o", f"{tmp_path / 'frames'}/", "--start", "2.5", "-q")
    assert r.returncode == 0, r.err
    assert len(png_frames(tmp_path / "frames")) == 5
    recipe = json.loads((tmp_path / "frames" / "recipe.json").read_text())
    assert recipe["start"] == 2.5 and recipe["duration"] is None


def test_a_window_of_a_gif_and_the_windows_that_cannot_be(cli, tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)) for i in range(8)]
    frames[0].save(tmp_path / "in.gif", save_all=True, append_images=frames[1:], duration=100)
    r = cli("pipeline", "quantize:k=2", tmp_path / "in.gif", "-o", f"{tmp_path / 'g'}/", "--start", "0.3",
            "--duration", "0.2", "-q", "--temporal", "off")
    assert r.returncode == 0, r.err
    got = png_frames(tmp_path / "g")
    assert len(got) == 2 and abs(int(got[0].mean()) - 90) <= 2
    clip = write_video(tmp_path / "c.mp4", [flat(100)] * 10, fps=10)
    r = cli("pipeline", "quantize", clip, "-o", tmp_path / "late.mp4", "--start", "5")
    assert r.returncode == 2 and "past the end" in r.err and "c.mp4" in r.err, r.err
    r = cli("pipeline", "quantize", clip, "-o", tmp_path / "o.mp4", "--start", "1:75")
    assert r.returncode == 2 and "--start must be a time" in r.err, r.err
    burst = tmp_path / "burst"
    burst.mkdir()
    for i in range(3):
        Image.fromarray(flat(50 * i)).save(burst / f"p{i}.png")
    r = cli("pipeline", "quantize", burst, "-o", tmp_path / "b.mp4", "--duration", "1")
    assert r.returncode == 2 and "not a sequence of photos" in r.err, r.err


# ---- 10: photos of mixed sizes -------------------------------------------------------------------------------------
def test_photos_of_mixed_sizes_are_cropped_padded_or_stretched(cli, tmp_path):
    burst = tmp_path / "burst"
    burst.mkdir()
    Image.fromarray(flat(128)).save(burst / "a.png")  # 64x48: the frame size
    square = np.zeros((48, 48, 3), np.uint8)
    square[:, :24] = (0, 200, 0)
    square[:, 24:] = (0, 0, 200)
    square[:12] = (200, 0, 0)  # a red band along the top quarter
    Image.fromarray(square).save(burst / "b.png")
    got = {}
    for fit in ("crop", "pad", "stretch"):
        dest = tmp_path / f"{fit}.mp4"
        r = cli("pipeline", "quantize:k=4", burst, "-o", dest, "--fit", fit, "-q", "--temporal", "off")
        assert r.returncode == 0, r.err
        got[fit] = decode(dest)[0][1]
        with av.open(str(dest)) as c:
            assert json.loads(c.metadata["comment"])["fit"] == fit

    def red_rows(f):
        return int(((f[:, 20:44, 0] > 150) & (f[:, 20:44, 2] < 80)).all(1).sum())

    crop, pad, stretch = got["crop"], got["pad"], got["stretch"]
    assert crop.shape == pad.shape == stretch.shape == (48, 64, 3)
    assert pad[:, :7].max() < 20 and pad[:, -7:].max() < 20  # black bars left and right
    assert crop[:, :7].mean() > 40 and stretch[:, :7].mean() > 40  # picture up to the edge
    assert red_rows(stretch) == pytest.approx(12, abs=1)  # the band keeps its height...
    assert red_rows(crop) == pytest.approx(8, abs=1)  # ...cropped: scaled to 64x64, 8 rows cut top and bottom
    r = cli("pipeline", "quantize:k=4", burst, "-o", tmp_path / "default.mp4", "-q", "--temporal", "off")
    assert r.returncode == 0 and np.array_equal(decode(tmp_path / "default.mp4")[0][1], crop)


# ---- 11: a damaged file -----------------------------------------------------------------------------------------------
def test_a_truncated_video_is_named_and_called_damaged(cli, tmp_path):
    clip = write_video(tmp_path / "good.mp4", [flat(10 * i) for i in range(20)], fps=10)
    data = clip.read_bytes()
    for name, part in (("cut.mp4", data[: len(data) // 3]), ("head.mp4", data[:200])):
        (tmp_path / name).write_bytes(part)
        r = cli("pipeline", "quantize", tmp_path / name, "-o", tmp_path / f"o-{name}")
        assert r.returncode == 1, r.err
        assert name in r.err and "damaged or truncated" in r.err, r.err
        assert "Errno" not in r.err and "1094995529" not in r.err and r.err.count("\n") == 1

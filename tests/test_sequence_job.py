"""The sequence job's work folder and guards: it never removes what artfx did not write, keeps finished frames
through any failure, trusts no frame whose hash does not match, and refuses what a still would refuse (the bomb
guard, the memory estimate) before decoding a frame."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import Field

from artfx import registry
from artfx.stage import Params
from test_video import pan_frames, png_frames, write_clip

av = pytest.importorskip("av")


class FlakyParams(Params):
    at: int = Field(-1, description="frame index that fails while the trigger file exists")


class Flaky:
    """Fails at a frame while a trigger file (ARTFX_TEST_FAIL) exists: the same job, failing or not."""

    name = "flaky"
    summary = "Fails at one frame while a trigger file exists (a test stage)."
    Params = FlakyParams

    def apply(self, image, params, ctx):
        trigger = os.environ.get("ARTFX_TEST_FAIL")
        if ctx.temporal is not None and ctx.temporal.index == params.at and trigger and os.path.exists(trigger):
            raise RuntimeError("the disk caught fire")
        return np.clip(image * 0.9 + 0.05, 0, 1).astype(np.float32)


@pytest.fixture
def flaky(monkeypatch, tmp_path):
    registry.register(Flaky())
    trigger = tmp_path / "fail-now"
    monkeypatch.setenv("ARTFX_TEST_FAIL", str(trigger))
    return trigger


@pytest.fixture(scope="module")
def pan(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("pan") / "pan.mp4", pan_frames(12))


SPEC = "quantize:k=5,flaky:at=6"


def test_a_work_dir_holding_other_files_is_refused_and_left_alone(cli, pan, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "job.json").write_text("{}")
    (proj / "precious.txt").write_text("x")
    r = cli("pipeline", "quantize:k=4", pan, "-o", tmp_path / "out.mp4", "--work-dir", proj)
    assert r.returncode == 2 and "holds files artfx did not write" in r.err and r.err.count("\n") == 1, r.err
    assert (proj / "precious.txt").read_text() == "x" and (proj / "job.json").read_text() == "{}"
    assert not (tmp_path / "out.mp4").exists()


def test_an_empty_work_dir_given_is_used_and_kept(cli, pan, tmp_path):
    work = tmp_path / "mine"
    work.mkdir()
    r = cli("pipeline", "quantize:k=4", pan, "-o", tmp_path / "out.mp4", "--work-dir", work)
    assert r.returncode == 0, r.err
    assert work.is_dir() and not list(work.iterdir())  # artfx's files gone, the user's folder stays


def test_a_failure_keeps_the_finished_frames_and_the_same_command_continues(cli, pan, tmp_path, flaky):
    flaky.write_text("")
    r = cli("pipeline", SPEC, pan, "-o", tmp_path / "out/")
    assert r.returncode == 1 and "the disk caught fire" in r.err, r.err
    assert "the same command continues from there" in r.err
    work = tmp_path / ".out.artfx-work"
    assert sorted(p.name for p in work.glob("frame-*.png")) == [f"frame-{i:06d}.png" for i in range(1, 7)]
    flaky.unlink()
    r = cli("pipeline", SPEC, pan, "-o", tmp_path / "out/")
    assert r.returncode == 0 and re.search(r"continuing from frame [2-7] ", r.err), r.err  # the last saved state
    assert not work.exists()
    straight = cli("pipeline", SPEC, pan, "-o", tmp_path / "straight/")
    assert straight.returncode == 0
    a, b = png_frames(tmp_path / "out"), png_frames(tmp_path / "straight")
    assert len(a) == len(b) == 12 and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("tamper", ["text", "other image", "other size", "deleted"])
def test_a_tampered_frame_is_made_again(cli, pan, tmp_path, flaky, tamper):
    flaky.write_text("")
    spec = "quantize:k=5,flaky:at=10"
    assert cli("pipeline", spec, pan, "-o", tmp_path / "out/").returncode == 1
    work = tmp_path / ".out.artfx-work"
    third = work / "frame-000003.png"
    if tamper == "text":
        third.write_text("not a picture")
    elif tamper == "other image":
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(third)
    elif tamper == "other size":
        Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(third)
    else:
        third.unlink()
    flaky.unlink()
    r = cli("pipeline", spec, pan, "-o", tmp_path / "out/")
    assert r.returncode == 0, r.err
    assert not re.search(r"continuing from frame ([4-9]|10) ", r.err), r.err  # not past the changed frame 3
    straight = cli("pipeline", spec, pan, "-o", tmp_path / "straight/")
    a, b = png_frames(tmp_path / "out"), png_frames(tmp_path / "straight")
    assert len(a) == len(b) == 12 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_another_jobs_work_folder_loses_only_its_own_files(cli, pan, tmp_path, flaky):
    flaky.write_text("")
    work = tmp_path / "w"
    assert cli("pipeline", SPEC, pan, "-o", tmp_path / "out/", "--work-dir", work).returncode == 1
    index = [json.loads(line)["file"] for line in (work / "index.jsonl").read_text().splitlines()]
    assert "frame-000006.png" in index
    flaky.unlink()
    r = cli("pipeline", "quantize:k=3", pan, "-o", tmp_path / "other/", "--work-dir", work)
    assert r.returncode == 0 and "holds another job's frames: starting again" in r.err, r.err
    assert len(png_frames(tmp_path / "other")) == 12
    flaky.write_text("")
    assert cli("pipeline", SPEC, pan, "-o", tmp_path / "out/", "--work-dir", work).returncode == 1
    (work / "notes.txt").write_text("mine")  # a file artfx did not write, in its own folder
    r = cli("pipeline", "quantize:k=3", pan, "-o", tmp_path / "other/", "--work-dir", work)
    assert r.returncode == 2 and "notes.txt" in r.err
    assert (work / "notes.txt").read_text() == "mine" and (work / "frame-000001.png").exists()


def test_a_full_disk_keeps_the_frames_and_says_how_to_continue(cli, pan, tmp_path, monkeypatch):
    from artfx.jobs import sequence

    real = sequence.WorkFolder.add
    made = []

    def add(self, name, data, **extra):
        if name.startswith("frame-"):
            if len(made) == 5:
                raise OSError(28, "No space left on device")
            made.append(name)
        return real(self, name, data, **extra)

    monkeypatch.setattr(sequence.WorkFolder, "add", add)
    r = cli("pipeline", "quantize:k=4", pan, "-o", tmp_path / "out.mp4")
    assert r.returncode == 1 and "No space left on device" in r.err
    assert "the same command continues from there" in r.err
    assert len(list((tmp_path / ".out.mp4.artfx-work").glob("frame-*.png"))) == 5
    monkeypatch.setattr(sequence.WorkFolder, "add", real)
    r = cli("pipeline", "quantize:k=4", pan, "-o", tmp_path / "out.mp4")
    assert r.returncode == 0 and re.search(r"continuing from frame [2-6] ", r.err), r.err


def _huge_clip(path: Path, side: int) -> Path:
    out = av.open(str(path), "w")
    s = out.add_stream("png", rate=2)
    s.width, s.height, s.pix_fmt = side, side, "rgb24"
    for i in range(2):
        frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), 40 * i, np.uint8), format="rgb24")
        frame.pts = i
        for p in s.encode(frame):
            out.mux(p)
    for p in s.encode(None):
        out.mux(p)
    out.close()
    return path


def test_video_frames_pass_the_bomb_guard_before_decoding(cli, tmp_path, monkeypatch):
    from PIL import Image as PILImage

    clip = _huge_clip(tmp_path / "huge.mov", 300)  # a few KB of PNG-coded frames, 90,000 pixels each
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 50_000)  # as if each frame were a 14000x14000 bomb
    still = tmp_path / "still.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(still)
    for src in (still, clip):
        r = cli("pipeline", "quantize:k=2", src, "-o", tmp_path / f"out-{src.stem}{'.png' if src == still else '.mp4'}")
        assert r.returncode == 1 and "image too large, possibly a decompression bomb" in r.err, r.err
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # refused before any work
    r = cli("pipeline", "quantize:k=2", clip, "-o", tmp_path / "out.mp4", "--allow-huge")
    assert r.returncode == 0, r.err


def test_video_frames_pass_the_memory_estimate_before_decoding(cli, tmp_path, monkeypatch):
    from artfx import resources

    clip = _huge_clip(tmp_path / "big.mov", 256)
    monkeypatch.setattr(resources, "available_host", lambda: 64 << 20)  # 64 MB free
    r = cli("pipeline", "style:size=256", clip, "-o", tmp_path / "out.mp4")
    assert r.returncode == 2 and "needs about" in r.err and "style" in r.err, r.err
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_the_work_folder_cannot_be_the_frames_output(cli, pan, tmp_path):
    for out, work in (("fr/", "fr"), ("fr/", "fr/w"), ("a/fr/", "a")):
        r = cli("pipeline", "quantize:k=4", pan, "-o", tmp_path / out, "--work-dir", tmp_path / work)
        assert r.returncode == 2 and "is the output" in r.err, (out, work, r.err)


def test_a_local_run_makes_every_frame_the_clip_has_not_the_count_it_declares(cli, pan, tmp_path):
    from fractions import Fraction

    from artfx.video import media

    source = media.open_source([pan])
    expected = sum(1 for _ in media.resample(source.frames(), source.info.fps, Fraction(37, 5)))
    source.close()
    r = cli("pipeline", "quantize:k=4", pan, "-o", tmp_path / "f/", "--fps", "7.4")
    assert r.returncode == 0, r.err
    assert len(png_frames(tmp_path / "f")) == expected == 8


def test_a_job_finished_after_a_failed_write_still_records_its_device(cli, pan, tmp_path, monkeypatch):
    from artfx.errors import OutputError
    from artfx.jobs import sequence

    real = sequence._finish
    calls = []

    def finish(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise OutputError("the disk is full")
        return real(*args, **kw)

    monkeypatch.setattr(sequence, "_finish", finish)
    assert cli("pipeline", "quantize:k=4", pan, "-o", tmp_path / "f/", "--temporal", "off").returncode == 2
    r = cli("pipeline", "quantize:k=4", pan, "-o", tmp_path / "f/", "--temporal", "off")
    assert r.returncode == 0, r.err
    assert json.loads((tmp_path / "f" / "recipe.json").read_text())["device"] == "cpu"


def test_a_torn_index_line_does_not_lock_the_folder(tmp_path):
    from artfx.jobs.sequence import INDEX, WorkFolder

    work = tmp_path / "w"
    folder = WorkFolder(work, "key")
    folder.claim()
    folder.add("frame-000001.png", b"one")
    with open(work / INDEX, "a") as f:
        f.write('{"file": "frame-0000')  # a crash in the middle of a line
    folder = WorkFolder(work, "key")
    folder.claim()
    folder.add("frame-000002.png", b"two")
    folder = WorkFolder(work, "key")
    folder.claim()
    assert folder.frames() == {0, 1}
    folder.remove()
    assert not work.exists()


def test_an_index_naming_other_files_is_not_trusted(cli, pan, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "job.json").write_text(json.dumps({"artfx-work": 1, "key": "another job"}))
    (work / "precious.txt").write_text("mine")
    (work / "index.jsonl").write_text(json.dumps({"file": "precious.txt", "sha256": "00"}) + "\n" +
                                      json.dumps({"file": "..", "sha256": "00"}) + "\n")
    r = cli("pipeline", "quantize:k=4", pan, "-o", tmp_path / "out.mp4", "--work-dir", work)
    assert r.returncode == 2 and "precious.txt" in r.err, r.err
    assert (work / "precious.txt").read_text() == "mine"


def test_an_animated_gif_over_the_bomb_guard_is_refused_as_one_and_runs_with_allow_huge(cli, tmp_path, monkeypatch):
    from PIL import Image as PILImage

    frames = [Image.fromarray(f) for f in pan_frames(4)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # each 64x48 frame is now a "bomb" (over 2x)
    r = cli("pipeline", "quantize:k=3", gif, "-o", tmp_path / "out.mp4")
    assert r.returncode == 1 and "image too large, possibly a decompression bomb" in r.err, r.err
    r = cli("pipeline", "quantize:k=3", gif, "-o", tmp_path / "out/", "--allow-huge")
    assert r.returncode == 0, r.err
    assert len(list((tmp_path / "out").glob("frame-*.png"))) == 4  # every frame, not one still

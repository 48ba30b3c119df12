"""Jobs from Python and from the command line are one path: the same files and bytes from `artfx.run(...,
output=)`, `artfx.sweep` and `artfx.replay` as from their commands; what a job says and refuses, once per job."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import Field

import artfx
from artfx import registry
from artfx.io import read_recipe
from artfx.io.png import RECIPE_KEY, recipe_text
from artfx.stage import Params
from conftest import gradient


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(gradient(30, 40, seed=i)).save(folder / f"p{i}.png")
    return folder


def test_run_with_output_writes_what_the_command_writes(cli, photos, tmp_path):
    spec = "quantize:k=4:palette_out=pal.gpl,slic:n=20"
    r = cli("pipeline", spec, photos, "-o", tmp_path / "cli", "--seed", "3")
    assert r.returncode == 0, r.err
    written = artfx.run(spec, photos, output=tmp_path / "py", seed=3)
    py, made = tree(tmp_path / "py"), tree(tmp_path / "cli")
    assert sorted(py) == sorted(made) and len(py) == 6
    assert all(py[n] == made[n] for n in py if n.endswith(".gpl"))  # the side files, byte for byte
    for name in ("p0.png", "p1.png", "p2.png"):  # the pictures: their recipes differ only in where the side file went
        a, b = tmp_path / "py" / name, tmp_path / "cli" / name
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
        ra, rb = read_recipe(a), read_recipe(b)
        assert ra["pipeline"][0]["params"].pop("palette_out") == str(tmp_path / "py" / f"pal-{a.stem}.gpl")
        rb["pipeline"][0]["params"].pop("palette_out")
        assert {k: v for k, v in ra.items() if k != "spec"} == {k: v for k, v in rb.items() if k != "spec"}
    assert sorted(p.name for p, _, _ in written.outputs) == ["p0.png", "p1.png", "p2.png"]
    assert written.outputs[0][2]["inputs"][0]["name"] == "p0.png"


def test_run_with_output_makes_a_video_job_and_without_it_says_to_give_one(cli, tmp_path):
    from test_video import pan_frames, write_clip

    clip = write_clip(tmp_path / "pan.mp4", pan_frames(6))
    r = cli("pipeline", "quantize:k=4", clip, "-o", tmp_path / "cli.gif")
    assert r.returncode == 0, r.err
    recipe = artfx.run("quantize:k=4", clip, output=tmp_path / "py.gif")
    assert (tmp_path / "py.gif").read_bytes() == (tmp_path / "cli.gif").read_bytes()
    assert recipe["inputs"][0]["name"] == "pan.mp4" and recipe["device"] == "cpu" and recipe["frame_rate"] == "12"
    with pytest.raises(artfx.UsageError, match="give output="):
        artfx.run("quantize", clip)


def test_a_batchs_bare_side_file_lands_beside_its_outputs(cli, photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("quantize", photos, "-k", "3", "--palette-out", "pal.gpl", "-o", tmp_path / "out")
    assert r.returncode == 0, r.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "p0.png", "p1.png", "p2.png", "pal-p0.gpl", "pal-p1.gpl", "pal-p2.gpl"]
    assert not list(tmp_path.glob("*.gpl"))


def test_sweep_and_replay_from_python_are_the_commands(cli, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(gradient(40, 60)).save(photo)
    r = cli("sweep", "quantize,slic:n=30", photo, "--vary", "quantize.k=2,5", "-o", tmp_path / "cli.png",
            "--cells", tmp_path / "cli-cells")
    assert r.returncode == 0, r.err
    cells = artfx.sweep("quantize,slic:n=30", photo, vary={"quantize.k": [2, 5]}, output=tmp_path / "py.png",
                        cells=tmp_path / "py-cells")
    assert (tmp_path / "py.png").read_bytes() == (tmp_path / "cli.png").read_bytes()
    assert tree(tmp_path / "py-cells") == tree(tmp_path / "cli-cells")
    assert [c.caption for c in cells] == ["k=2", "k=5"]
    cell = next((tmp_path / "py-cells").iterdir())
    artfx.replay(cell, tmp_path / "again.png", input=photo)
    r = cli("replay", cell, "-o", tmp_path / "again-cli.png", "--yes", "--input", photo)
    assert r.returncode == 0, r.err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(Image.open(cell)))
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "again-cli.png").read_bytes()


def test_a_parameter_varied_twice_is_refused(cli, photo, tmp_path):
    for second in ("quantize.k=4,5", "1.k=4,5"):
        r = cli("sweep", "quantize", photo, "--vary", "quantize.k=2,3", "--vary", second, "-o", tmp_path / "s.png")
        assert r.returncode == 2 and "the same parameter as --vary quantize.k" in r.err and r.err.count("\n") == 1
    assert not (tmp_path / "s.png").exists()


class ChattyParams(Params):
    level: float = Field(0.5, ge=0, le=1, description="grey level")


class Warner:
    name = "warner"
    summary = "Warns on every picture (a test stage)."
    Params = ChattyParams

    def apply(self, image, params, ctx):
        ctx.log.warning("warner: this picture is too grey")
        return np.full_like(image, params.level)


def test_a_warning_is_said_once_per_job(cli, photo, photos, tmp_path, caplog):
    registry.register(Warner())
    r = cli("sweep", "warner", photo, "--vary", "warner.level=0.1,0.2,0.3", "-o", tmp_path / "s.png")
    assert r.returncode == 0 and r.err.count("too grey") == 1, r.err
    r = cli("pipeline", "warner", photos, "-o", tmp_path / "batch")
    assert r.returncode == 0 and r.err.count("too grey") == 1, r.err
    r = cli("pipeline", "warner", photo, "-o", tmp_path / "one.png")  # a new job says it again
    assert r.err.count("too grey") == 1


def _opened_during(fn) -> list[str]:
    """The files this process opens while ``fn`` runs (Python's audit events: every open, os.open included)."""
    seen: list[str] = []
    watching = [True]

    def hook(event, args):
        if watching[0] and event == "open" and isinstance(args[0], (str, bytes, Path)):
            seen.append(str(args[0]))

    sys.addaudithook(hook)
    try:
        fn()
    finally:
        watching[0] = False
    return seen


def test_replay_opens_nothing_the_recipe_names_before_the_user_says_yes(cli, photo, tmp_path):
    palette = tmp_path / "palette.png"
    Image.fromarray(255 - gradient(8, 8, seed=5)).save(palette)
    art = tmp_path / "art.png"
    assert cli("pipeline", f"quantize:k=3:palette={palette}", photo, "-o", art).returncode == 0
    result = {}
    opened = _opened_during(lambda: result.setdefault("r", cli("replay", art, "-o", tmp_path / "again.png")))
    r = result["r"]
    assert r.returncode == 2 and "pass --yes" in r.err, r.err  # asked (no terminal here to say yes on)
    assert f"reads {photo}" in r.err and f"reads {palette}" in r.err  # shown...
    assert not [p for p in opened if Path(p).name in ("photo.png", "palette.png")], opened  # ...never opened
    r = cli("replay", art, "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(Image.open(art)))


def test_a_recipe_of_artfx_0_2_still_replays(cli, photo, tmp_path):
    art = tmp_path / "art.png"
    assert cli("pipeline", "quantize:k=3", photo, "-o", art, "--seed", "2").returncode == 0
    recipe = read_recipe(art)
    old = {k: v for k, v in recipe.items() if k != "inputs"} | {"input": recipe["inputs"][0]}
    with Image.open(art) as im:
        im.load()
        pixels = im.copy()
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(RECIPE_KEY, recipe_text(old))
    pixels.save(tmp_path / "old.png", pnginfo=info)
    r = cli("replay", tmp_path / "old.png", "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 0, r.err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(pixels))
    assert json.loads(json.dumps(read_recipe(tmp_path / "again.png")))["inputs"] == recipe["inputs"]


def test_progress_is_one_report_object(photos, tmp_path):
    heard: dict[str, list] = {"progress": [], "file": [], "saved": []}

    class Listen(artfx.Report):
        def progress(self, label, done, total, metrics):
            heard["progress"].append(label)

        def file(self, src, dest, error):
            heard["file"].append((Path(src).name, Path(dest).name, error))

        def saved(self, path):
            heard["saved"].append(Path(path).name)

    artfx.run("quantize:k=3:palette_out=pal.gpl", photos, output=tmp_path / "out", progress=Listen())
    assert heard["file"] == [(f"p{i}.png", f"p{i}.png", None) for i in range(3)]
    assert sorted(heard["saved"]) == ["pal-p0.gpl", "pal-p1.gpl", "pal-p2.gpl"]
    assert "files" in heard["progress"] and any(label.endswith(":quantize") for label in heard["progress"])
    logging.getLogger("artfx").handlers[:] = []


def test_a_cancel_stops_a_batch_and_says_what_was_done(photos, tmp_path):
    class CancelAfterFirst(artfx.Report):
        def file(self, src, dest, error):
            self.cancelled = True

    with pytest.raises(artfx.errors.Cancelled, match="1 of 3 files were done"):
        artfx.run("quantize:k=3", photos, output=tmp_path / "out", progress=CancelAfterFirst())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["p0.png"]


class StopParams(Params):
    at: float = Field(0.0, description="the level at which Ctrl-C is pressed")


class CtrlC:
    """Ctrl-C pressed while this step runs, as a compiled kernel reports it (a SystemError over the interrupt)."""

    name = "ctrlc"
    summary = "Presses Ctrl-C (a test stage)."
    Params = StopParams

    def apply(self, image, params, ctx):
        ctx.checkpoint(image)
        if params.at > 0:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise SystemError("CPUDispatcher returned a result with an exception set")
        return image.copy()


def test_ctrl_c_stops_a_sweep_and_a_python_run(photo, tmp_path):
    registry.register(CtrlC())
    with pytest.raises(KeyboardInterrupt):
        artfx.sweep("ctrlc", photo, vary={"ctrlc.at": [0, 1]}, output=tmp_path / "sheet.png")
    assert not (tmp_path / "sheet.png").exists()
    with pytest.raises(KeyboardInterrupt):
        artfx.run("ctrlc:at=1", photo)
    with pytest.raises(artfx.errors.Interrupted, match="best image so far was written"):  # a still keeps it
        artfx.run("ctrlc:at=1", photo, output=tmp_path / "still.png")
    assert read_recipe(tmp_path / "still.png")["interrupted"] is True


def test_pictures_in_memory_skip_the_bomb_guard_files_do_not(photo, monkeypatch):
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 500)
    assert artfx.run("quantize:k=2", gradient(24, 32)).image.shape == (24, 32, 3)
    with pytest.raises(artfx.ArtfxError, match="decompression bomb"):
        artfx.run("quantize:k=2", photo)


def test_a_pipeline_of_stage_objects_runs_with_output_too(photo, tmp_path):
    from artfx.pipeline import Pipeline, Step

    stage = Warner()  # registered nowhere
    pipeline = Pipeline([Step(stage, stage.Params(level=0.25))])
    artfx.run(pipeline, photo, output=tmp_path / "grey.png")
    assert np.allclose(np.asarray(Image.open(tmp_path / "grey.png").convert("RGB")) / 255, 0.25, atol=1 / 255)

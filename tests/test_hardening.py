"""What a hostile review found (issue 10): files a run reads are never overwritten, plugins cannot break artfx,
bad values and odd streams give one line, signals keep the best image, help that says what it means."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, gradient


def one_error(r) -> str:
    lines = [line for line in r.err.strip().splitlines() if line.startswith("artfx: error:")]
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    return lines[0]


# ---- every file a step reads is an input ---------------------------------------------------------------------
def test_a_palette_image_is_never_overwritten(cli, tmp_path, photo):
    pal = tmp_path / "pal.png"
    Image.fromarray(gradient(8, 8, seed=2)).save(pal)
    before = pal.read_bytes()
    r = cli("quantize", photo, "--palette", pal, "-o", pal)
    assert r.returncode == 2 and "would overwrite the input" in one_error(r)
    r = cli("quantize", photo, "--palette", pal, "--palette-out", pal, "-o", tmp_path / "o.png")
    assert r.returncode == 2 and "would overwrite the input" in one_error(r)
    assert pal.read_bytes() == before and not (tmp_path / "o.png").exists()


def test_style_images_masks_and_init_are_never_overwritten(cli, tmp_path, photo):
    art = tmp_path / "art.png"
    Image.fromarray(gradient(16, 16, seed=3)).save(art)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(mask)
    before = art.read_bytes(), mask.read_bytes()
    cases = [
        ["style", photo, "--image", art, "-o", art],
        ["pipeline", f"style:image={art}:init={art}:gif={art}", photo, "-o", tmp_path / "o.png"],
        ["pipeline", f"style:image={art}:regions={mask}", photo, "-o", mask],
    ]
    for args in cases:
        r = cli(*args)
        assert r.returncode == 2 and "would overwrite the input" in one_error(r), args
    assert (art.read_bytes(), mask.read_bytes()) == before


# ---- plugins -------------------------------------------------------------------------------------------------
def test_plugins_that_exit_print_or_return_bytes_are_contained(cli, plugin_path, photo, tmp_path):
    r = cli("--version", plugins=plugin_path)
    assert r.returncode == 0 and r.stdout.decode().startswith("artfx ")
    listing = cli("stages", plugins=plugin_path)
    assert listing.returncode == 0 and "quitter" in listing.stdout.decode()
    assert "failed to load: SystemExit: 3" in listing.stdout.decode()
    assert "hello from a chatty plugin" not in listing.stdout.decode()
    assert "hello from a chatty plugin" in listing.err  # its print went to stderr
    r = cli("pipeline", "exits", photo, "-o", tmp_path / "o.png", plugins=plugin_path)
    assert r.returncode == 1 and "step 1 (exits from artfx-channels) called sys.exit(4)" in one_error(r)
    assert not (tmp_path / "o.png").exists()
    for spec, words in [("bytes", "returned uint8 values, not float32 in [0, 1]"),
                        ("bytes:integers=false", "returned values from 0 to")]:
        r = cli("pipeline", spec, photo, "-o", tmp_path / "o.png", plugins=plugin_path)
        assert r.returncode == 1 and words in one_error(r) and "step 1 (bytes from artfx-channels)" in r.err
    # a plugin that prints while importing: the PNG on standard output is still a PNG
    sys.modules.pop("artfx_chatty", None)
    r = cli("pipeline", "chatty:rgb", photo, "-o", "-", plugins=plugin_path)
    assert r.returncode == 0 and r.stdout.startswith(b"\x89PNG") and "hello from a chatty plugin" in r.err


# ---- values the validator must refuse ---------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["channels:gain=nan", "channels:gain=inf", "channels:v=1e309"])
def test_nan_and_infinity_are_refused_before_any_work(cli, plugin_path, photo, tmp_path, spec):
    r = cli("pipeline", spec, photo, "-o", tmp_path / "o.png", plugins=plugin_path)
    assert r.returncode == 2 and "finite number" in one_error(r)


def test_impossible_file_names_are_usage_errors(cli, photo, tmp_path):
    long_name = tmp_path / ("x" * 300 + ".png")
    for args in (["quantize", photo, "-o", long_name], ["quantize", long_name, "-o", tmp_path / "o.png"],
                 ["quantize", photo, "-o", f"{tmp_path}/a\0b.png"]):
        r = cli(*args)
        assert r.returncode == 2, r.err
        assert "too long" in one_error(r) or "NUL byte" in one_error(r)


def _shell(command: str, env_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(env_path), str(ROOT)]))
    return subprocess.run(["sh", "-c", command], capture_output=True, env=env, timeout=120)


def test_closed_full_and_broken_standard_streams(plugin_path, photo, tmp_path):
    art = f"{sys.executable} -m artfx pipeline channels:rgb"
    closed_out = _shell(f"{art} {photo} -o - >&-", plugin_path)
    assert closed_out.returncode == 2 and closed_out.stderr.decode().strip() == \
        "artfx: error: standard output is closed; give -o FILE"
    full = _shell(f"{art} {photo} -o - >/dev/full", plugin_path)
    assert full.returncode == 2, full.stderr
    assert full.stderr.decode().strip() == \
        "artfx: error: cannot write to standard output: No space left on device"
    closed_in = _shell(f"{art} - -o {tmp_path / 'o.png'} <&-", plugin_path)
    assert closed_in.returncode == 2
    assert closed_in.stderr.decode().strip() == "artfx: error: standard input is closed; give an input file"
    # a reader that goes away: quiet, like any Unix tool (an output far larger than the pipe's buffer)
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1600, 1600, 3), dtype=np.uint8)).save(noise)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_path), str(ROOT)]))
    broken = subprocess.run(["bash", "-c", f"{art} {noise} -o - | head -c1 >/dev/null; "
                             "echo ${PIPESTATUS[0]} >&2"], capture_output=True, env=env, timeout=120)
    assert broken.stderr.decode().strip() == "141"  # nothing but the status: SIGPIPE's, as `yes | head` gives


# ---- signals -----------------------------------------------------------------------------------------------------
def test_sigterm_keeps_the_best_image_and_leaves_no_temporary_file(tmp_path, plugin_path, photo):
    out, marker = tmp_path / "art.png", tmp_path / "started.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_path), str(ROOT)]))
    proc = subprocess.Popen([sys.executable, "-m", "artfx", "pipeline", f"sleepy:marker={marker}", str(photo),
                             "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()
    assert "best image so far" in err.decode()
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), 255 - np.asarray(Image.open(photo)))
    assert not [p for p in tmp_path.iterdir() if "artfx-tmp" in p.name]


# ---- what users hit -------------------------------------------------------------------------------------------------
def test_dump_config_keeps_every_value_written(cli):
    r = cli("pipeline", "quantize:k=8:space=lab,slic", "--dump-config")
    text = r.stdout.decode()
    assert "k = 8" in text and 'space = "lab"' in text  # both equal to their defaults, both kept
    assert "n = " not in text  # slic's parameters were not written, so they follow the defaults


def test_a_forgotten_spec_and_a_spec_beside_a_config_are_explained(cli, photo, tmp_path):
    r = cli("pipeline", photo, "-o", tmp_path / "o.png")
    assert r.returncode == 2 and "is a file, not a pipeline spec" in one_error(r)
    look = tmp_path / "look.toml"
    look.write_text('[[step]]\nstage = "quantize"\n')
    r = cli("pipeline", "slic", "-c", look, photo, "-o", tmp_path / "o.png")
    assert r.returncode == 2 and "'slic' is not an input file: with -c the steps come from" in one_error(r)
    for args in (["pipeline"], ["quantize"], ["replay"]):
        r = cli(*args)
        assert r.returncode == 2 and "needs arguments" in one_error(r) and "Usage:" in r.stdout.decode()
    assert cli().returncode == 0


def test_help_says_what_options_take(cli):
    text = cli("quantize", "--help").stdout.decode()
    assert "<bool>" not in text and "<str>" not in text and "<list[" not in text
    assert "--k " not in text and " -k " in text
    assert "<lab|rgb>" in text and "<auto|cpu|cuda|mps>" in text and "<8|16>" in text
    assert text.count("2..256") == 1  # the range is said once
    replay = cli("replay", "--help").stdout.decode()
    assert "Only errors on stderr" in replay and "Debug messages" in replay
    r = cli("style", "x.png", "--colours", "keep", "-o", "y.png")
    assert r.returncode == 2 and "did you mean --colors?" in one_error(r)


def test_side_outputs_get_a_wrote_line(cli, photo, tmp_path):
    r = cli("quantize", photo, "--palette-out", tmp_path / "p.gpl", "-o", tmp_path / "o.png")
    assert r.returncode == 0
    assert f"wrote {tmp_path / 'p.gpl'}" in r.err and f"wrote {tmp_path / 'o.png'}" in r.err


# ---- recipes ------------------------------------------------------------------------------------------------------
def test_a_very_long_recipe_can_be_read_back(tmp_path, plugin_path, monkeypatch):
    import artfx
    from artfx import registry
    from artfx.io import read_image, read_recipe

    monkeypatch.syspath_prepend(str(plugin_path))
    registry.refresh()
    try:
        steps = [("channels", {"order": "rgb", "gain": 1.0 - i * 1e-5}) for i in range(6600)]
        out = artfx.run(steps, gradient(6, 8))
        path = artfx.write_image(tmp_path / "long.png", out)
    finally:
        registry.refresh()
    picture = read_image(path)  # Pillow reads the text chunks too: it refuses any over 1 MiB
    assert read_recipe(picture)["pipeline"][-1]["params"]["gain"] == pytest.approx(1.0 - 6599e-5)
    assert len(read_recipe(path)["pipeline"]) == 6600


def test_side_input_images_go_through_the_bomb_guard_once(cli, photo, tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    Image.fromarray(gradient(40, 40)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    r = cli("quantize", photo, "--palette", big, "-o", tmp_path / "o.png")
    assert r.returncode == 1 and "too large" in one_error(r) and "--allow-huge" in r.err
    assert cli("pipeline", f"quantize:palette={big}", "--dump-config").returncode == 0  # not even read
    r = cli("quantize", photo, "--palette", big, "-o", tmp_path / "o.png", "--allow-huge")
    assert r.returncode == 0, r.err


# ---- untrusted recipes ------------------------------------------------------------------------------------------
def _art_with_recipe(tmp_path, photo, cli, change) -> Path:
    from artfx.io import RECIPE_KEY, read_image, read_recipe, write_image
    from artfx.io.png import recipe_text

    art = tmp_path / "art.png"
    assert cli("quantize", photo, "-k", "3", "-o", art).returncode == 0
    recipe = read_recipe(art)
    change(recipe)
    odd = tmp_path / "odd.png"
    write_image(odd, read_image(art).rgb, metadata={RECIPE_KEY: recipe_text(recipe)})
    return odd


def test_replay_shows_what_it_would_run_and_asks_first(cli, tmp_path, photo):
    pal = tmp_path / "secret.png"
    Image.fromarray(gradient(8, 8, seed=4)).save(pal)

    def use_palette(recipe):
        recipe["pipeline"][0]["params"]["palette"] = str(pal)
    odd = _art_with_recipe(tmp_path, photo, cli, use_palette)
    r = cli("replay", odd, "-o", tmp_path / "again.png")  # standard input is not a terminal here
    assert r.returncode == 2 and "pass --yes" in one_error(r)
    assert "replay runs 1 step(s): quantize:" in r.err and f"reads {pal}" in r.err and f"reads {photo}" in r.err
    assert not (tmp_path / "again.png").exists()
    r = cli("replay", odd, "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 0, r.err


@pytest.mark.parametrize("change, words", [
    (lambda r: r.pop("pipeline"), "bad recipe: pipeline: Field required"),
    (lambda r: r.update(pipeline=[]), "bad recipe: pipeline: List should have at least 1 item"),
    (lambda r: r["pipeline"][0].update(params="k=3"), "bad recipe: pipeline.0.params"),
    (lambda r: r["pipeline"][0]["params"].update(k="many"), "bad recipe: quantize: k='many'"),
    (lambda r: r.update(seed="x"), "bad recipe: seed"),
    (lambda r: r["inputs"][0].update(sha256="zz"), "bad recipe: inputs.0.sha256"),
    (lambda r: r["inputs"][0].update(name="../../etc/passwd"), "bad recipe: the input name"),
    (lambda r: r.update(inputs=[]), "bad recipe: inputs: List should have at least 1 item"),
])
def test_malformed_recipes_are_one_line_errors(cli, tmp_path, photo, change, words):
    odd = _art_with_recipe(tmp_path, photo, cli, change)
    r = cli("replay", odd, "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 2 and words in one_error(r)


def test_replay_reads_only_regular_files(cli, tmp_path, photo):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)

    def point_at_fifo(recipe):
        recipe["inputs"] = [{"name": "fifo.png", "path": str(fifo), "sha256": "0" * 64}]
    odd = _art_with_recipe(tmp_path, photo, cli, point_at_fifo)
    r = cli("replay", odd, "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 2 and "not beside" in one_error(r)  # the FIFO is skipped, never opened
    r = cli("replay", odd, "--input", "/dev/zero", "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 2 and "/dev/zero is not a regular file" in one_error(r)


# ---- memory, estimated before the work ---------------------------------------------------------------------------
class _HungryParams(__import__("artfx").Params):
    width: int = __import__("pydantic").Field(64, ge=1, description="output width")
    appetite: int = __import__("pydantic").Field(1, ge=0, description="how much of its output it needs at once")


class _Hungry:
    """Makes a picture ``width`` px wide, and says so through the memory hooks."""

    name = "t-hungry"
    summary = "a stage whose memory grows with a parameter"
    Params = _HungryParams
    ran = 0

    def memory(self, params, shape, device):
        from artfx.resources import Need, image_bytes

        return Need(host=image_bytes((params.width, params.width), 2) * params.appetite, why=f"width={params.width}")

    def out_shape(self, params, shape):
        return (params.width, params.width)

    def apply(self, image, params, ctx):
        type(self).ran += 1
        return np.zeros((params.width, params.width, 3), np.float32)


def test_a_run_that_cannot_fit_is_refused_before_any_work(cli, photo, tmp_path):
    from artfx import registry
    from artfx.resources import available_host

    registry.register(_Hungry())
    try:
        huge = int((available_host() / 24) ** 0.5 * 1.5)  # two float32 RGB copies of huge^2 px: beyond memory
        r = cli("pipeline", f"t-hungry:width={huge},quantize", photo, "-o", tmp_path / "o.png")
        assert r.returncode == 2, r.err
        line = one_error(r)
        assert f"step 1 (t-hungry): width={huge} needs about" in line and "is available" in line
        assert "--allow-huge" in line and _Hungry.ran == 0 and not (tmp_path / "o.png").exists()
        # a step that needs little itself but returns a huge picture: the next step is judged at that size
        r = cli("pipeline", f"t-hungry:width={huge}:appetite=0,quantize", photo, "-o", tmp_path / "o.png")
        assert r.returncode == 2 and "step 2 (quantize)" in one_error(r) and _Hungry.ran == 0
        r = cli("pipeline", "t-hungry:width=64,quantize", photo, "-o", tmp_path / "o.png")
        assert r.returncode == 0 and _Hungry.ran == 1, r.err
    finally:
        registry.refresh(forget_registered=True)


def test_huge_style_and_primitive_sizes_are_refused_before_any_work(cli, photo, tmp_path):
    from artfx.resources import available_host

    r = cli("pipeline", "style:size=16384:scales=1", photo, "-o", tmp_path / "o.png", "--device", "cpu")
    assert r.returncode == 2 and "step 1 (style): size=16384 needs about" in one_error(r)
    needed = 32768 * 24576 * 3 * (8 + 4 + 4)  # the float64 canvas and two float32 copies at 32768 x 24576
    if available_host() > needed:
        pytest.skip("this machine has the memory for a 32768 px primitive canvas")
    r = cli("pipeline", "primitive:output_size=32768", photo, "-o", tmp_path / "o.png")
    assert r.returncode == 2 and "output_size=32768 needs about" in one_error(r)
    assert not (tmp_path / "o.png").exists()


def test_the_output_suffix_chooses_the_format_even_svg(cli, photo, tmp_path):
    r = cli("primitive", photo, "-n", "5", "--restarts", "2", "--candidates", "20", "--refine", "0",
            "-o", tmp_path / "shapes.svg")
    assert r.returncode == 0, r.err
    svg = (tmp_path / "shapes.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polygon") == 5
    r = cli("quantize", photo, "-k", "5", "-o", tmp_path / "poster.gif")
    assert r.returncode == 0, r.err
    with Image.open(tmp_path / "poster.gif") as im:
        assert im.format == "GIF" and len(im.convert("RGB").getcolors()) == 5
    assert cli("quantize", photo, "-k", "5", "-o", tmp_path / "poster.png").returncode == 0
    with Image.open(tmp_path / "poster.png") as im:
        assert im.mode == "P"  # a quantized picture is an indexed PNG
    r = cli("quantize", photo, "-k", "5", "-o", tmp_path / "q.jpg", "--quality", "40")
    small = (tmp_path / "q.jpg").stat().st_size
    cli("quantize", photo, "-k", "5", "-o", tmp_path / "q.jpg", "--quality", "100")
    assert r.returncode == 0 and small < (tmp_path / "q.jpg").stat().st_size
    r = cli("slic", photo, "-o", tmp_path / "s.svg")
    assert r.returncode == 2 and "'.svg' is not an image format" in one_error(r)


def test_primitive_s_working_size_is_work_size_and_size_still_works(cli, photo, tmp_path):
    from artfx.io import read_recipe

    r = cli("pipeline", "primitive:n=3:size=16:restarts=1:candidates=10:refine=0", photo, "-o", tmp_path / "o.png")
    assert r.returncode == 0, r.err
    assert "size is now called work_size" in r.err
    params = read_recipe(tmp_path / "o.png")["pipeline"][0]["params"]
    assert params["work_size"] == 16 and "size" not in params
    r = cli("primitive", photo, "-n", "3", "--size", "16", "--work-size", "20", "-o", tmp_path / "p.png")
    assert r.returncode == 2 and "give only work_size" in one_error(r)


def test_a_batch_remakes_what_a_changed_palette_image_made(cli, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(gradient(16, 20, seed=i)).save(folder / f"p{i}.png")
    pal = tmp_path / "pal.png"
    Image.fromarray(gradient(8, 8, seed=5)).save(pal)
    assert cli("quantize", folder, "-k", "3", "--palette", pal, "-o", out).returncode == 0
    first = (out / "p0.png").read_bytes()
    r = cli("quantize", folder, "-k", "3", "--palette", pal, "-o", out)
    assert "2 of 2 outputs are already complete" in r.err  # the same recipe, the same files: nothing to do
    Image.fromarray(255 - gradient(8, 8, seed=5)).save(pal)
    r = cli("quantize", folder, "-k", "3", "--palette", pal, "-o", out)
    assert r.returncode == 0 and "already complete" not in r.err
    assert (out / "p0.png").read_bytes() != first


def test_a_sweep_checks_its_cells_folder_and_keeps_each_cell_s_side_files(cli, photo, tmp_path):
    r = cli("sweep", "quantize", photo, "--vary", "quantize.k=2,3", "-o", tmp_path / "g.png",
            "--cells", tmp_path / "g.png")
    assert r.returncode == 2 and "sheet's own name" in one_error(r) and not (tmp_path / "g.png").exists()
    r = cli("sweep", f"quantize:palette_out={tmp_path / 'pp.gpl'}", photo, "--vary", "quantize.k=2,3",
            "-o", tmp_path / "sw.png")
    assert r.returncode == 0, r.err
    palettes = sorted(tmp_path.glob("pp-*.gpl"))
    assert len(palettes) == 2
    assert sorted(len(p.read_text().splitlines()) - 4 for p in palettes) == [2, 3]  # each cell's own colours


# ---- issue 20: odd names, short writes, deep JSON, leftovers, examples ---------------------------------------------
def test_every_stage_shows_an_example_that_runs(cli, plugin_path):
    import shlex

    from artfx import registry

    names = [e.name for e in registry.entries()]
    assert {"quantize", "slic", "primitive", "style"} <= set(names)
    for name in names + ["channels", "sleepy", "bytes"]:
        r = cli("stages", "show", name, plugins=plugin_path)
        assert r.returncode == 0, r.err
        line = r.stdout.decode().strip().splitlines()[-1]
        assert line.startswith("example: artfx pipeline ") and "VALUE" not in line, line
        spec = shlex.split(line)[3]
        assert spec.startswith(f"{name}:")
        checked = cli("pipeline", spec, "--dump-config", plugins=plugin_path)  # parsed and validated, not run
        assert checked.returncode == 0 and f'stage = "{name}"' in checked.stdout.decode(), (spec, checked.err)


def test_a_recipe_nested_100000_deep_is_a_bad_recipe(cli, photo, tmp_path):
    from artfx.io import RECIPE_KEY, read_image, write_image

    art = tmp_path / "art.png"
    write_image(art, read_image(photo).rgb, metadata={RECIPE_KEY: "[" * 100000 + "]" * 100000})
    r = cli("replay", art, "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 1 and not (tmp_path / "again.png").exists()
    assert one_error(r).endswith(f"bad recipe: {art}: the stored recipe is nested more than 64 levels deep")
    deep = '{"artfx": "0.2.0", "pipeline": [{"stage": "quantize", "params": {"k": %s}}]}' % ("[" * 65 + "]" * 65)
    write_image(art, read_image(photo).rgb, metadata={RECIPE_KEY: deep})
    assert "nested more than 64 levels deep" in one_error(cli("replay", art, "-o", tmp_path / "again.png", "--yes"))


def test_a_reader_that_quits_early_is_exit_141_even_on_unbuffered_output(plugin_path, tmp_path):
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(noise)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=os.pathsep.join([str(plugin_path), str(ROOT)]), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "artfx", "pipeline", "channels:rgb", noise, "-o", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    head = proc.stdout.read(10)  # like `| head -c 10`: it takes a little of the PNG (270 KB, one write) and goes away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and head.startswith(b"\x89PNG"), err
    assert "Traceback" not in err


def test_a_name_that_is_not_utf8_runs_alone_and_in_a_batch_and_replays(cli, tmp_path, monkeypatch):
    from artfx.io import read_recipe

    monkeypatch.chdir(tmp_path)
    odd = os.fsdecode(b"\xff\xfe.png")  # what Python makes of a name whose bytes are not UTF-8
    Image.fromarray(gradient(16, 20)).save(odd)
    Image.fromarray(gradient(16, 20, seed=1)).save("b.png")
    r = cli("quantize", odd, "-k", "3", "-o", "o.png")
    assert r.returncode == 0, r.err
    assert read_recipe("o.png")["inputs"][0]["name"] == "\\xff\\xfe.png"  # valid UTF-8, and says what the bytes were
    r = cli("quantize", odd, "b.png", "-k", "3", "-o", "out")
    assert r.returncode == 0, r.err
    assert os.path.exists(os.path.join("out", odd)) and "wrote out/\\xff\\xfe.png" in r.err
    r = cli("replay", "o.png", "-o", "again.png", "--yes")
    assert r.returncode == 0 and "reads \\xff\\xfe.png" in r.err, r.err
    assert np.array_equal(np.asarray(Image.open("again.png")), np.asarray(Image.open("o.png")))
    # a name holding a terminal escape and a right-to-left override is shown escaped, not obeyed
    sly = "a\x1b[2J\u202egnp.png"
    Image.fromarray(gradient(16, 20)).save(sly)
    r = cli("quantize", sly, "-k", "3", "-o", "sly.png")
    assert r.returncode == 0 and "\x1b" not in r.err and "\u202e" not in r.err
    assert read_recipe("sly.png")["inputs"][0]["name"] == "a\\x1b[2J\\u202egnp.png"
    r = cli("quantize", "missing\u202e.png", "-k", "3", "-o", "m.png")
    assert r.returncode == 2 and "\u202e" not in r.err and "missing" in one_error(r)


def test_a_ray_instance_started_for_a_job_leaves_no_session_folder(cli, photo, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    import tempfile

    from ray._raylet import AuthenticationTokenLoader, Config

    token = tmp_path / "token"  # as in test_ray: Ray's token kept out of the home folder
    token.write_text(__import__("secrets").token_hex(32))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    base = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    try:
        monkeypatch.setenv("RAY_TMPDIR", str(base))
        r = cli("slic", photo, "-n", "30", "-o", tmp_path / "a.png", "--executor", "ray")
        assert r.returncode == 0, r.err
        assert not (base / "ray").exists()  # made by the job's own Ray instance: all of it gone
        # beside another instance's session, only this job's own goes
        other = base / "ray" / "session_2020-01-01_00-00-00_000000_1"
        other.mkdir(parents=True)
        (other / "logs.txt").write_text("someone else's")
        r = cli("slic", photo, "-n", "30", "-o", tmp_path / "b.png", "--executor", "ray")
        assert r.returncode == 0, r.err
        assert sorted(p.name for p in (base / "ray").iterdir()) == [other.name]
        assert (other / "logs.txt").read_text() == "someone else's"
    finally:
        __import__("shutil").rmtree(base, ignore_errors=True)

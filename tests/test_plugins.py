"""Stage discovery through entry points: a throwaway plugin distribution is listed, runs in a pipeline, and gets
its own command; broken plugins are reported, not fatal."""

from __future__ import annotations

import numpy as np
from PIL import Image



def test_plugin_is_listed_and_broken_ones_reported(cli, plugin_path):
    r = cli("stages", plugins=plugin_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "channels" in out and "Reorder colour channels" in out and "[artfx-channels]" in out
    assert "broken" in out and "failed to load" in out and "lacks summary" in out
    assert "missing" in out and "ModuleNotFoundError" in out
    for builtin in ("quantize", "slic", "primitive", "style"):
        assert builtin in out


def test_plugin_runs_in_a_pipeline_and_as_a_command(cli, plugin_path, photo, tmp_path):
    src = np.asarray(Image.open(photo).convert("RGB"))
    out1 = tmp_path / "a.png"
    r = cli("pipeline", "channels:order=gbr:gain=1,channels:rgb", str(photo), "-o", str(out1),
                plugins=plugin_path)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(out1).convert("RGB")), src[..., [1, 2, 0]])

    out2 = tmp_path / "b.png"
    r = cli("channels", str(photo), "--order", "bgr", "-o", str(out2), plugins=plugin_path)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(out2).convert("RGB")), src[..., ::-1])

    r = cli("channels", "--help", plugins=plugin_path)
    assert r.returncode == 0
    assert "--order" in r.stdout.decode() and "--gain" in r.stdout.decode()


def test_using_a_broken_plugin_is_an_error_naming_it(cli, plugin_path, photo, tmp_path):
    r = cli("pipeline", "broken", str(photo), "-o", str(tmp_path / "x.png"), plugins=plugin_path)
    assert r.returncode == 1
    err = r.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "broken" in err and "failed to load" in err
    assert not (tmp_path / "x.png").exists()


def test_plugin_param_validation_uses_its_model(cli, plugin_path, photo, tmp_path):
    r = cli("pipeline", "channels:gain=9", str(photo), "-o", str(tmp_path / "x.png"), plugins=plugin_path)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "gain" in err and "0.0..4.0" in err

"""Which stages load: name clashes between distributions, ARTFX_PLUGINS, and errors that name the step, the stage
and the distribution."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TWIN = '''
import numpy as np
from artfx import Params

class Twin:
    summary = "A second distribution's stage of the same name."
    Params = Params

    def __init__(self, name):
        self.name = name

    def apply(self, image, params, ctx):
        return np.zeros_like(image)

channels = Twin("channels")
quantize = Twin("quantize")
'''


@pytest.fixture(scope="module")
def twin_path(tmp_path_factory) -> Path:
    """Another distribution (artfx-twin) that offers 'channels' (as artfx-channels does) and 'quantize' (as artfx
    itself does)."""
    root = tmp_path_factory.mktemp("twin")
    (root / "artfx_twin.py").write_text(TWIN)
    info = root / "artfx_twin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: artfx-twin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [artfx.stages]
        channels = artfx_twin:channels
        quantize = artfx_twin:quantize
    """))
    return root


def test_a_name_offered_by_two_plugins_is_an_error_naming_both(cli, monkeypatch, plugin_path, twin_path, photo,
                                                                tmp_path):
    monkeypatch.syspath_prepend(str(twin_path))
    r = cli("pipeline", "channels", photo, "-o", tmp_path / "o.png", plugins=plugin_path)
    assert r.returncode == 1 and len(r.err.strip().splitlines()) == 1
    assert "artfx-channels" in r.err and "artfx-twin" in r.err and "ARTFX_PLUGINS" in r.err
    assert not (tmp_path / "o.png").exists()
    listing = cli("stages", plugins=plugin_path).stdout.decode()
    assert "ambiguous: provided by artfx-channels and artfx-twin" in listing
    # choosing one distribution settles it
    monkeypatch.setenv("ARTFX_PLUGINS", "artfx-channels")
    r = cli("pipeline", "channels:rgb", photo, "-o", tmp_path / "o.png", plugins=plugin_path)
    assert r.returncode == 0, r.err


def test_artfx_s_own_stage_wins_over_a_plugin_of_the_same_name(cli, monkeypatch, twin_path, photo, tmp_path):
    monkeypatch.syspath_prepend(str(twin_path))
    r = cli("pipeline", "quantize:k=2", photo, "-o", tmp_path / "o.png")
    assert r.returncode == 0, r.err
    assert "artfx-twin also provides one, which is ignored" in r.err
    from PIL import Image

    assert Image.open(tmp_path / "o.png").getextrema() != ((0, 0), (0, 0), (0, 0))  # not the twin's black
    assert "(also in artfx-twin, ignored)" in cli("stages").stdout.decode()


@pytest.mark.parametrize("setting, channels, builtins", [("none", False, True), ("artfx-channels", True, True),
                                                         ("artfx_Channels", True, True), ("other", False, True),
                                                         ("all", True, True)])
def test_artfx_plugins_limits_third_party_distributions(cli, monkeypatch, plugin_path, setting, channels,
                                                        builtins):
    monkeypatch.setenv("ARTFX_PLUGINS", setting)
    listing = cli("stages", plugins=plugin_path).stdout.decode()
    assert ("channels" in listing) is channels
    assert all(name in listing for name in ("quantize", "slic", "primitive", "style")) is builtins


def test_a_failing_step_names_its_number_stage_and_distribution(cli, plugin_path, photo, tmp_path):
    r = cli("pipeline", "channels,fails", photo, "-o", tmp_path / "o.png", plugins=plugin_path)
    assert r.returncode == 1
    assert "step 2 (fails from artfx-channels) failed: RuntimeError: boom" in r.err


def test_running_a_built_in_stage_does_not_import_plugins(cli, plugin_path, photo, tmp_path):
    import sys

    sys.modules.pop("artfx_channels", None)
    r = cli("quantize", photo, "-k", "3", "-o", tmp_path / "o.png", plugins=plugin_path)
    assert r.returncode == 0, r.err
    assert "artfx_channels" not in sys.modules

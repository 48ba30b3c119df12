"""Shared fixtures: tiny generated images and a throwaway plugin distribution."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def gradient(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    """A uint8 RGB test picture with smooth ramps, a flat block and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), (x + y) * 255 / max(h + w - 2, 1)], -1)
    img[: h // 2, : w // 3] = (230, 40, 30)
    img = img + rng.normal(0, 4, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(gradient()).save(path)
    return path


PLUGIN_CODE = '''
"""A throwaway third-party plugin: a stage with no base class, only the structural contract."""
from typing import Literal
import numpy as np
from pydantic import Field
from artfx.stage import Params

from typing import Optional
from pathlib import Path
from artfx.stage import input_file, output_dir, output_file

class ChannelParams(Params):
    order: Literal["rgb", "bgr", "gbr"] = Field("bgr", description="new channel order")
    gain: float = Field(1.0, ge=0.0, le=4.0, description="multiplier before clipping")
    v: float = Field(1.0, ge=0.0, le=1.0, description="value multiplier (a one-letter name that -v already has)")
    bits: Literal[2, 8, 16] = Field(16, description="bits per channel kept (a numeric choice)")
    tint: Optional[Path] = input_file(None, "multiply by this image's mean colour")
    frames: Optional[Path] = output_dir("write the result here too, as frame.png")

class Channels:
    name = "channels"
    summary = "Reorder colour channels (a test plugin)."
    Params = ChannelParams

    def apply(self, image, params, ctx):
        idx = ["rgb".index(c) for c in params.order]
        out = image[..., idx] * params.gain * params.v
        if params.tint:
            from artfx.io import read_image
            out = out * read_image(params.tint).rgb.reshape(-1, 3).mean(0)
        levels = 2 ** params.bits - 1
        out = np.round(np.clip(out, 0, 1) * levels) / levels
        ctx.progress(1, 1)
        if params.frames:
            from artfx.io import encode_image
            ctx.save(params.frames / "frame.png", encode_image(out.astype(np.float32)))
        return out.astype(np.float32)

stage = Channels()

import time

class SleepyParams(Params):
    seconds: float = Field(30.0, ge=0, description="how long to work")
    checkpoint: bool = Field(True, description="record a best-so-far image")
    marker: Optional[Path] = output_file("written once the work has started")

class Sleepy:
    """Stands in for a long optimisation: keeps a best image, then works until interrupted."""
    name = "sleepy"
    summary = "Work for a while (a test plugin)."
    Params = SleepyParams

    def apply(self, image, params, ctx):
        if params.checkpoint:
            ctx.checkpoint((1.0 - image).astype(np.float32))
        if params.marker:
            ctx.save(params.marker, b"started")
        end = time.monotonic() + params.seconds
        while time.monotonic() < end:
            time.sleep(0.02)
        return image.copy()

sleepy = Sleepy()

class FailParams(Params):
    pass

class Fails:
    name = "fails"
    summary = "Always fails at run time (a test plugin)."
    Params = FailParams

    def apply(self, image, params, ctx):
        raise RuntimeError("boom")

fails = Fails()

class Broken:
    name = "broken"

class Exits:
    name = "exits"
    summary = "Calls sys.exit inside apply (a test plugin)."
    Params = FailParams

    def apply(self, image, params, ctx):
        import sys
        sys.exit(4)

exits = Exits()

class BytesParams(Params):
    scale: float = Field(255.0, description="what to multiply by")
    integers: bool = Field(True, description="return uint8")

class Bytes:
    """Returns 0..255 values, a common plugin bug."""
    name = "bytes"
    summary = "Returns 0..255 instead of 0..1 (a test plugin)."
    Params = BytesParams

    def apply(self, image, params, ctx):
        out = image * params.scale
        return out.astype(np.uint8) if params.integers else out.astype(np.float64)

bytes_stage = Bytes()
'''

CHATTY_CODE = '''
print("hello from a chatty plugin")
from artfx_channels import Channels

class Chatty(Channels):
    name = "chatty"

stage = Chatty()
'''

QUITTER_CODE = '''
import sys
sys.exit(3)
'''


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding an importable plugin package and its dist-info with an artfx.stages entry point:
    exactly what pip would install, found by importlib.metadata once the directory is on sys.path."""
    root = tmp_path_factory.mktemp("plugin")
    pkg = root / "artfx_channels"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(PLUGIN_CODE)
    (root / "artfx_chatty.py").write_text(CHATTY_CODE)
    (root / "artfx_quitter.py").write_text(QUITTER_CODE)
    info = root / "artfx_channels-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: artfx-channels\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [artfx.stages]
        channels = artfx_channels:stage
        sleepy = artfx_channels:sleepy
        fails = artfx_channels:fails
        broken = artfx_channels:Broken
        missing = artfx_channels_nowhere:stage
        exits = artfx_channels:exits
        bytes = artfx_channels:bytes_stage
        chatty = artfx_chatty:stage
        quitter = artfx_quitter:stage
    """))
    return root


def run_cli(*args: str, env_extra: dict[str, str] | None = None, input_bytes: bytes | None = None,
            cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line in a subprocess."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(env_extra or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in [env.get("PYTHONPATH", ""), str(ROOT)] if p)
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "artfx", *args], capture_output=True, input=input_bytes,
                          env=env, cwd=cwd, timeout=timeout)


class CliResult:
    """What an in-process run of the command line gave: exit code, standard output (bytes), standard error."""

    def __init__(self, returncode: int, stdout: bytes, stderr: str):
        self.returncode, self.stdout, self.err = returncode, stdout, stderr

    @property
    def stderr(self) -> bytes:  # the same shape as subprocess.CompletedProcess
        return self.err.encode()


@pytest.fixture
def cli(monkeypatch):
    """The command line in this process (``artfx.cli.main``), for tests where a subprocess is not what is
    tested: the same code path and exit codes, without a new interpreter per call. ``plugins=True`` puts the
    throwaway plugin distribution on sys.path; ``input_bytes`` is standard input."""
    import io

    from artfx import registry
    from artfx.cli import main

    def call(*args: str, plugins: Path | None = None, input_bytes: bytes | None = None) -> CliResult:
        out, err = io.BytesIO(), io.StringIO()

        class Out:
            buffer = out

            def write(self, text: str) -> int:
                return out.write(text.encode())

            def flush(self) -> None:
                pass

            def isatty(self) -> bool:
                return False

        with monkeypatch.context() as m:
            m.setattr(sys, "stdout", Out())
            m.setattr(sys, "stderr", err)
            m.setattr(sys, "stdin", type("In", (), {"buffer": io.BytesIO(input_bytes or b"")})())
            if plugins is not None:
                m.syspath_prepend(str(plugins))
            registry.refresh()
            try:
                code = main([str(a) for a in args])
            finally:
                registry.refresh()
        return CliResult(code, out.getvalue(), err.getvalue())

    return call


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny images: one torch thread is as fast, and far faster when other processes load the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def exact_sse(painter) -> float:
    """primitive: the squared error of the painter's shape list rendered exactly (and its canvas is that picture)."""
    from artfx.stages.primitive import render

    pic = render.render(painter.shapes, painter.bg, (painter.W, painter.H))
    assert np.abs(pic - painter.canvas.cur).max() < 1e-12  # the canvas is the picture of the shape list
    return float(((pic - painter.target) ** 2).sum())

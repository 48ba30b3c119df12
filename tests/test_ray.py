"""--executor ray on a real Ray cluster started here: a head and a second node (``ray start`` processes, one CPU
each, on this machine's loopback address as Ray resolves it), token authentication on, stopped at the end.

No mocks: the same stages, the same files, a worker really killed, a driver really stopped."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, gradient

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A head and a second node, as a user would start them (``ray start --head``, then ``ray start --address``)."""

    def __init__(self, plugin_path: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="artfx-ray-", dir="/tmp"))  # short: Ray's socket paths are limited
        token = self.dir / "token"
        token.write_text(secrets.token_hex(32))
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        env = {**os.environ, **self.env, "PYTHONPATH": os.pathsep.join([str(plugin_path), str(ROOT)])}
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        common = ["--num-cpus", "1", "--num-gpus", "0", "--object-store-memory", str(100 << 20),
                  "--node-ip-address", "127.0.0.1", "--temp-dir", str(self.dir / "ray"), "--block",
                  "--dashboard-agent-listen-port", str(_free_port()), "--disable-usage-stats"]
        self.procs: list[subprocess.Popen] = []
        log = open(self.dir / "head.log", "wb")
        self.procs.append(subprocess.Popen(
            [str(RAY), "start", "--head", "--port", str(port), "--include-dashboard=false",
             "--ray-client-server-port", str(_free_port()), *common], env=env, stdout=log, stderr=log,
            start_new_session=True, cwd=self.dir))
        self._wait(lambda: socket.create_connection(("127.0.0.1", port), 0.5).close(), "the head")
        log = open(self.dir / "node.log", "wb")
        self.procs.append(subprocess.Popen([str(RAY), "start", "--address", self.address, *common], env=env,
                                           stdout=log, stderr=log, start_new_session=True, cwd=self.dir))
        self._wait(self._two_nodes, "the second node")

    def _wait(self, probe, what: str, timeout: float = 90) -> None:
        end = time.monotonic() + timeout
        while True:
            try:
                if probe() is not False:
                    return
            except OSError:
                pass
            if time.monotonic() > end or any(p.poll() is not None for p in self.procs):
                logs = " | ".join((self.dir / n).read_text(errors="replace")[-400:] for n in ("head.log", "node.log")
                                  if (self.dir / n).exists())
                self.stop()
                raise RuntimeError(f"{what} of the test's Ray cluster did not start: {logs}")
            time.sleep(0.3)

    def _two_nodes(self) -> bool:
        code = ("import ray; ray.init(address='%s', logging_level='ERROR'); "
                "print(sum(n['Alive'] for n in ray.nodes()))" % self.address)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             env={**os.environ, **self.env})
        return out.stdout.strip().endswith("2")

    def stop(self) -> None:
        for p in reversed(self.procs):  # the second node first, then the head; whatever is left is killed
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(plugin_path):
    pytest.importorskip("ray")
    c = Cluster(plugin_path)
    yield c
    c.stop()


@pytest.fixture
def on_cluster(cluster, monkeypatch, plugin_path):
    """This process as the cluster's driver: its token, and the test plugin importable here as on the workers."""
    from ray._raylet import AuthenticationTokenLoader, Config

    def reload() -> None:  # Ray reads its auth settings once per process: again, now that they changed
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()

    for k, v in cluster.env.items():
        monkeypatch.setenv(k, v)
    reload()
    monkeypatch.syspath_prepend(str(plugin_path))
    from artfx import registry

    registry.refresh()
    yield cluster
    registry.refresh()
    monkeypatch.undo()
    reload()


def photos(folder: Path, n: int = 6, h: int = 48, w: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(gradient(h, w, seed=i)).save(folder / f"p{i}.png")
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_batch_gives_the_bytes_of_a_local_run(on_cluster, cli, tmp_path):
    src = photos(tmp_path / "in")
    palette = tmp_path / "colours.png"  # a file a step reads: it travels to the workers as bytes
    Image.fromarray(255 - gradient(20, 20, seed=9)).save(palette)
    spec = f"quantize:k=5:palette={palette}:palette_out={tmp_path}/pal/{{stem}}.gpl,slic:n=40"
    (tmp_path / "pal").mkdir()
    local = cli("pipeline", spec, src, "-o", tmp_path / "local", "--seed", "7")
    assert local.returncode == 0, local.err
    shutil.move(tmp_path / "pal", tmp_path / "local-pal")
    (tmp_path / "pal").mkdir()
    temporary = set(Path(tempfile.gettempdir()).glob("artfx-*"))
    ray = cli("pipeline", spec, src, "-o", tmp_path / "ray", "--seed", "7", "--executor", "ray",
              "--ray-address", on_cluster.address, "-v")
    assert ray.returncode == 0, ray.err
    assert set(Path(tempfile.gettempdir()).glob("artfx-*")) <= temporary  # the workers' shipped files removed
    assert tree(tmp_path / "ray") == tree(tmp_path / "local") and len(tree(tmp_path / "ray")) == 6
    assert tree(tmp_path / "pal") == tree(tmp_path / "local-pal") and len(tree(tmp_path / "pal")) == 6
    nodes = {line.split("(node ")[1].split(")")[0] for line in ray.err.splitlines() if "(node " in line}
    assert len(nodes) == 2, ray.err  # one worker on each node
    assert ray.err.count("wrote ") == 12  # six pictures and six palettes, each written once


def test_a_sweep_gives_the_sheet_and_cells_of_a_local_run(on_cluster, cli, photo, tmp_path):
    args = ["sweep", "quantize:space=rgb,slic:n=30", photo, "--vary", "quantize.k=2,5", "--vary",
            "slic.compactness=5,20", "--cell-size", "64", "--seed", "3"]
    local = cli(*args, "-o", tmp_path / "local.png", "--cells", tmp_path / "local")
    assert local.returncode == 0, local.err
    ray = cli(*args, "-o", tmp_path / "ray.png", "--cells", tmp_path / "ray", "--executor", "ray",
              "--ray-address", on_cluster.address)
    assert ray.returncode == 0, ray.err
    assert (tmp_path / "ray.png").read_bytes() == (tmp_path / "local.png").read_bytes()
    assert tree(tmp_path / "ray") == tree(tmp_path / "local") and len(tree(tmp_path / "ray")) == 4


def test_a_video_split_at_its_cut_gives_the_frames_of_a_local_run(on_cluster, cli, tmp_path):
    from test_video import pan_frames, probe, write_clip

    clip = write_clip(tmp_path / "cut.mp4", pan_frames(6) + pan_frames(6, photo="astronaut.png", x0=100, y0=100))
    spec = "quantize:k=4,slic:n=30"
    local = cli("pipeline", spec, clip, "-o", f"{tmp_path / 'local'}/")
    assert local.returncode == 0, local.err
    ray = cli("pipeline", spec, clip, "-o", f"{tmp_path / 'ray'}/", "--executor", "ray", "--ray-address",
              on_cluster.address, "-v")
    assert ray.returncode == 0, ray.err
    assert "2 chunk(s) of the 12 frames (1-6, 7-12)" in ray.err
    assert tree(tmp_path / "ray") == tree(tmp_path / "local") and len(tree(tmp_path / "ray")) == 13  # + recipe
    # one shot: two halves, the second starting a few frames early to warm up its state; those are dropped
    ray = cli("pipeline", spec, write_clip(tmp_path / "pan.mp4", pan_frames(12)), "-o", tmp_path / "pan-out.mp4",
              "--executor", "ray", "--ray-address", on_cluster.address, "-v")
    assert ray.returncode == 0, ray.err
    assert "2 chunk(s) of the 12 frames (1-6, 7-12 after 5 warm-up)" in ray.err
    assert probe(tmp_path / "pan-out.mp4")[0] == 12
    assert not list(tmp_path.glob(".*artfx-work"))


def test_chunks_start_at_cuts_or_warm_up_and_resume_where_they_stopped():
    from artfx.jobs.sequence import WARMUP, Chunk, plan_chunks, resume_at

    assert plan_chunks(12, [6], 2, True) == [Chunk(0, 0, 6), Chunk(6, 6, 12)]  # at the cut: no warm-up
    assert plan_chunks(12, [], 2, True) == [Chunk(0, 0, 6), Chunk(6 - WARMUP, 6, 12)]  # one shot: warm up
    assert plan_chunks(12, [3, 6, 9], 2, True) == [Chunk(0, 0, 6), Chunk(6, 6, 12)]  # short shots share a chunk
    assert plan_chunks(10, [], 3, False) == [Chunk(0, 0, 4), Chunk(4, 4, 8), Chunk(8, 8, 10)]  # frames alone
    for total, cuts, workers in [(900, [], 64), (900, [100, 450, 451], 8), (7, [], 16), (100, [50], 1)]:
        kept = [i for c in plan_chunks(total, cuts, workers, True) for i in range(c.start, c.end)]
        assert kept == list(range(total))  # every frame once, in order
    assert resume_at(Chunk(0, 0, 66), set(range(22))) == Chunk(22 - WARMUP, 22, 66)
    assert resume_at(Chunk(6, 6, 12), {6, 7}) == Chunk(6, 8, 12)  # not back across the cut it starts at
    assert resume_at(Chunk(1, 6, 12), set()) == Chunk(1, 6, 12)


def test_a_killed_worker_does_not_lose_or_repeat_an_output(on_cluster, tmp_path, caplog, capsys):
    import artfx

    src = photos(tmp_path / "in")
    killed: list[int] = []
    written: list[Path] = []

    class Watch(artfx.Report):
        def progress(self, label, done, total, metrics):
            if label.startswith("worker") and not killed:  # a worker has finished a file, is busy with the next
                killed.append(metrics["pid"])
                os.kill(metrics["pid"], signal.SIGKILL)

        def file(self, src_path, dest, exc):
            assert exc is None, exc
            written.append(dest)

    caplog.set_level(logging.INFO, logger="artfx")
    artfx.run("sleepy:seconds=1:checkpoint=false", src, output=tmp_path / "out", progress=Watch(),
              executor="ray", ray_address=on_cluster.address)
    assert killed
    assert sorted(written) == sorted(tmp_path / "out" / f"p{i}.png" for i in range(6))  # each once
    for i in range(6):
        with Image.open(tmp_path / "out" / f"p{i}.png") as out:
            assert np.array_equal(np.asarray(out.convert("RGB")), gradient(48, 64, seed=i))
    assert f"(pid {killed[0]} on" in caplog.text and "died; Ray restarted it" in caplog.text
    assert not [p for p in (tmp_path / "out").iterdir() if "artfx-tmp" in p.name]
    assert capsys.readouterr().out == ""  # Ray's own news of the death stays off standard output (-o - is a PNG)


def test_resume_after_a_stopped_driver(on_cluster, cli, plugin_path, tmp_path):
    src = photos(tmp_path / "in")
    out = tmp_path / "out"
    args = ["pipeline", "sleepy:seconds=1.5:checkpoint=false", str(src), "-o", str(out), "--executor", "ray",
            "--ray-address", on_cluster.address]
    env = {**os.environ, **on_cluster.env, "PYTHONPATH": os.pathsep.join([str(plugin_path), str(ROOT)])}
    driver = subprocess.Popen([sys.executable, "-m", "artfx", *args], env=env, stderr=subprocess.PIPE)
    end = time.monotonic() + 120
    while not list(out.glob("p*.png")) and time.monotonic() < end and driver.poll() is None:
        time.sleep(0.05)
    driver.kill()  # the driver is stopped as hard as can be, in the middle of the job
    driver.wait()
    driver.stderr.close()
    done = {p.name: p.stat() for p in out.glob("p*.png")}  # not a temporary file the kill left
    assert 1 <= len(done) < 6
    again = cli(*args, "--resume")
    assert again.returncode == 0, again.err
    assert f"{len(done)} of 6 outputs are already complete" in again.err
    for name, before in done.items():  # finished outputs are not made again
        after = (out / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    for i in range(6):
        with Image.open(out / f"p{i}.png") as img:
            assert np.array_equal(np.asarray(img.convert("RGB")), gradient(48, 64, seed=i))
    third = cli(*args)  # by default too, with a message: nothing is left to do
    assert third.returncode == 0 and "6 of 6 outputs are already complete" in third.err, third.err


def test_without_ray_installed_the_error_says_how_to_get_it(cli, photo, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where the extra is not installed
    result = cli("quantize", photo, "-o", tmp_path / "o.png", "--executor", "ray")
    assert result.returncode == 2
    assert result.err.strip().splitlines() == ["artfx: error: --executor ray needs Ray, which is not installed: "
                                               "pip install 'artfx[ray]'"]


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_cluster_is_one_line(cli, photo, tmp_path, scheme):
    pytest.importorskip("ray")
    address = f"{scheme}127.0.0.1:{_free_port()}"
    began = time.monotonic()
    result = cli("quantize", photo, "-o", tmp_path / "o.png", "--executor", "ray", "--ray-address", address)
    assert result.returncode == 2 and time.monotonic() - began < 30
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"artfx: error: cannot reach the Ray cluster at {address}: "), lines
    assert not (tmp_path / "o.png").exists()


def test_ray_address_needs_the_ray_executor(cli, photo, tmp_path):
    result = cli("quantize", photo, "-o", tmp_path / "o.png", "--ray-address", "auto")
    assert result.returncode == 2 and "--ray-address is for --executor ray" in result.err


def test_resume_default_skips_only_outputs_of_the_same_recipe(cli, tmp_path):
    src = photos(tmp_path / "in", n=3)
    assert cli("pipeline", "quantize:k=4", src, "-o", tmp_path / "out").returncode == 0
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    same = cli("pipeline", "quantize:k=4", src, "-o", tmp_path / "out")
    assert "3 of 3 outputs are already complete" in same.err
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == first
    other = cli("pipeline", "quantize:k=5", src, "-o", tmp_path / "out")  # another recipe: made again
    assert "already complete" not in other.err and other.err.count("wrote ") == 3
    again = cli("pipeline", "quantize:k=5", src, "-o", tmp_path / "out", "--no-resume")
    assert "already complete" not in again.err and again.err.count("wrote ") == 3
    trusted = cli("pipeline", "quantize:k=6", src, "-o", tmp_path / "out", "--resume")  # whatever made them
    assert "3 of 3 outputs are already complete (there, --resume)" in trusted.err and "wrote" not in trusted.err
    digest = hashlib.sha256((tmp_path / "out" / "p0.png").read_bytes()).hexdigest()
    shutil.copy(src / "p1.png", src / "p0.png")
    changed = cli("pipeline", "quantize:k=5", src, "-o", tmp_path / "out")  # an input changed: made again
    assert "2 of 3 outputs are already complete" in changed.err
    assert hashlib.sha256((tmp_path / "out" / "p0.png").read_bytes()).hexdigest() != digest


def test_style_gives_the_bytes_of_a_local_run_with_as_many_threads(on_cluster, cli, tmp_path):
    """Torch's sums depend on its thread count: each worker here has one CPU, so the local run gets one thread."""
    import torch

    src = photos(tmp_path / "in", n=2, h=24, w=32)
    spec = "style:iterations=2:size=32"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = cli("pipeline", spec, src, "-o", tmp_path / "local", "--device", "cpu")
    finally:
        torch.set_num_threads(threads)
    assert local.returncode == 0, local.err
    ray = cli("pipeline", spec, src, "-o", tmp_path / "ray", "--device", "cpu", "--executor", "ray",
              "--ray-address", on_cluster.address)
    assert ray.returncode == 0, ray.err
    assert tree(tmp_path / "ray") == tree(tmp_path / "local") and len(tree(tmp_path / "ray")) == 2


def test_without_an_address_a_ray_instance_starts_on_this_machine(cli, photo, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from ray._raylet import AuthenticationTokenLoader, Config

    token = tmp_path / "token"  # Ray's own default is a token in ~/.ray: kept out of the home folder here
    token.write_text(secrets.token_hex(32))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    assert cli("slic", photo, "-n", "30", "-o", tmp_path / "local.png").returncode == 0
    result = cli("slic", photo, "-n", "30", "-o", tmp_path / "ray.png", "--executor", "ray")
    assert result.returncode == 0, result.err
    assert (tmp_path / "ray.png").read_bytes() == (tmp_path / "local.png").read_bytes()

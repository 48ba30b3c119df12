"""artfx serve's application, in process through Starlette's test client: forms generated from the stages' Params,
uploads and their limits, the browser never naming a server file, jobs with live events, the queue (one job at a
time per device, places shown), cancelling, downloads carrying their recipe, the session folder removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
from PIL import Image
from pydantic import Field

pytest.importorskip("starlette", reason="the web extra is not installed: pip install -e '.[web]'")
try:
    from starlette.testclient import TestClient
except (ImportError, RuntimeError) as exc:  # it needs httpx2 (in the test extra)
    pytest.skip(f"Starlette's test client cannot load: {exc}".splitlines()[0], allow_module_level=True)

from artfx import registry  # noqa: E402
from artfx.errors import ParamError  # noqa: E402
from artfx.io import read_recipe  # noqa: E402
from artfx.pipeline import Pipeline  # noqa: E402
from artfx.stage import Params, input_file, output_dir, output_file  # noqa: E402
from artfx.web.app import SAMPLES, create_app  # noqa: E402
from conftest import ROOT, gradient  # noqa: E402

POST = {"X-Artfx": "1"}
TINY_STYLE = {"size": "32", "start_size": "32", "iterations": "100000"}  # runs until cancelled, ~10 ms a step


@pytest.fixture
def app():
    application = create_app()
    with TestClient(application) as client:
        client.session = application.state.session  # type: ignore[attr-defined]
        yield client


def upload(client: TestClient, data: bytes, name: str = "photo.png") -> dict[str, Any]:
    r = client.post(f"/api/uploads?name={name}", content=data, headers=POST)
    assert r.status_code == 200, r.text
    return r.json()


def png_bytes(img: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(img).save(out, "PNG")
    return out.getvalue()


def submit(client: TestClient, input_id: str, steps: list[dict], **options: Any):
    return client.post("/api/jobs", json={"input": input_id, "steps": steps, "options": options}, headers=POST)


def events(client: TestClient, job_id: str, until: str = "end", timeout: float = 60) -> list[tuple[str, Any]]:
    """The job's server-sent events, read until one of kind ``until``."""
    seen: list[tuple[str, Any]] = []
    deadline = time.monotonic() + timeout
    with client.stream("GET", f"/api/jobs/{job_id}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            assert time.monotonic() < deadline, f"no {until!r} event in {timeout} s: {seen}"
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                seen.append((kind, json.loads(line[6:])))
                if kind == until:
                    break
    return seen


def colours(data: bytes) -> int:
    import io

    arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return len(np.unique(arr.reshape(-1, 3), axis=0))


def wait_for(predicate, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


# ---- forms from Params ---------------------------------------------------------------------------------------
class _TintParams(Params):
    strength: float = Field(0.5, ge=0, le=1, description="how strong")
    mode: str = Field("mul", description="free text")
    tint: Optional[Path] = input_file(None, "an image whose mean colour tints the picture")
    report: Optional[Path] = output_file("write a report (.txt or .json)")
    frames: Optional[Path] = output_dir("write the result here as frame.png too")


class _Tint:
    name = "t-web-tint"
    summary = "Tint the picture (a test plugin)."
    Params = _TintParams

    def apply(self, image, params, ctx):
        out = image.copy()
        if params.tint:
            out = out * ctx.read_image(params.tint).rgb.reshape(-1, 3).mean(0) * params.strength
        ctx.progress(1, 1)
        if params.report:
            ctx.save(params.report, f"tinted {image.shape}")
        if params.frames:
            from artfx.io import encode_image

            ctx.save(Path(params.frames) / "frame.png", encode_image(np.clip(out, 0, 1).astype(np.float32)))
        return np.clip(out, 0, 1).astype(np.float32)


@pytest.fixture
def tint_stage():
    registry.register(_Tint())
    yield
    registry.refresh(forget_registered=True)


def test_info_describes_every_stage_from_its_params(app, tint_stage):
    info = app.get("/api/info").json()
    stages = {s["name"]: s for s in info["stages"]}
    assert {"quantize", "slic", "primitive", "style", "t-web-tint"} <= set(stages)
    k = next(f for f in stages["quantize"]["fields"] if f["name"] == "k")
    assert (k["widget"], k["min"], k["max"], k["default"], k["step"]) == ("number", 2, 256, "8", "1")
    assert k["description"].startswith("Number of colours")
    fields = {f["name"]: f for s in stages.values() for f in s.get("fields", [])}
    assert stages["quantize"]["fields"][0]["name"] == "k"
    assert {f["name"]: f["widget"] for f in stages["t-web-tint"]["fields"]} == {
        "strength": "number", "mode": "text", "tint": "upload", "report": "output", "frames": "output"}
    report = next(f for f in stages["t-web-tint"]["fields"] if f["name"] == "report")
    assert report["suffixes"] == [".txt", ".json"]
    palette_out = next(f for f in stages["quantize"]["fields"] if f["name"] == "palette_out")
    assert palette_out["suffixes"] == [".png", ".gpl"]
    assert fields["svg"]["suffixes"] == [".svg"] and fields["dither"]["choices"] == ["none", "floyd-steinberg"]
    assert fields["edges"]["widget"] == "bool" and fields["edges"]["default"] is False
    assert next(f for f in stages["style"]["fields"] if f["name"] == "image")["widget"] == "styles"
    assert info["styles"][0] == "starry-night" and "chelsea.jpg" in info["samples"]
    assert app.get("/api/styles/great-wave").headers["content-type"] == "image/jpeg"
    assert app.get("/api/styles/..%2F..%2Fsecret").status_code == 404
    page = app.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert app.get("/static/app.js").status_code == 200


# ---- running ---------------------------------------------------------------------------------------------------
def test_quantize_job_runs_with_live_events_and_downloads_with_recipe(app, tmp_path, cli):
    sample = app.post("/api/samples/chelsea.jpg", headers=POST).json()
    assert (sample["name"], sample["width"], sample["height"]) == ("chelsea.jpg", 384, 255)
    view = app.get(sample["view"])
    assert view.headers["content-type"] == "image/png" and Image.open(__import__("io").BytesIO(view.content)).size \
        == (384, 255)
    steps = [{"stage": "quantize", "params": {"k": "4"}, "outputs": {"palette_out": ".gpl"}}]
    r = submit(app, sample["id"], steps, seed="3")
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["command"] == ("artfx pipeline quantize:k=4:palette_out=chelsea-palette-out.gpl chelsea.jpg "
                              "-o chelsea-art.png --seed 3")
    assert job["toml"].startswith("[run]\nseed = 3\n\n[[step]]\nstage = \"quantize\"\nk = 4\n")
    seen = events(app, job["id"])
    kinds = [k for k, _ in seen]
    assert kinds[-1] == "end" and "progress" in kinds and "image" in kinds
    progress = [d for k, d in seen if k == "progress"][-1]
    assert progress["label"] == "1:quantize" and progress["fraction"] == 1.0 and progress["metrics"]["colours"] == 4
    end = seen[-1][1]
    assert end["state"] == "done" and end["kind"] == "image", end
    names = {f["name"]: f["url"] for f in end["files"]}
    assert set(names) == {"chelsea-art.png", "chelsea-palette-out.gpl"}
    result = app.get(end["result"])
    assert 'filename="chelsea-art.png"' in result.headers["content-disposition"]
    assert colours(result.content) == 4
    gpl = app.get(names["chelsea-palette-out.gpl"]).text
    assert gpl.startswith("GIMP Palette") and len([ln for ln in gpl.splitlines() if "\t#" in ln]) == 4
    # the recipe names files as the user has them, and `artfx replay` makes the same picture from it
    (tmp_path / "chelsea-art.png").write_bytes(result.content)
    (tmp_path / "chelsea.jpg").write_bytes((SAMPLES / "chelsea.jpg").read_bytes())
    recipe = read_recipe(tmp_path / "chelsea-art.png")
    assert recipe["spec"] == "quantize:k=4:palette_out=chelsea-palette-out.gpl" and recipe["seed"] == 3
    assert recipe["inputs"][0]["name"] == "chelsea.jpg" and app.session.folder.name not in json.dumps(recipe)
    r = cli("replay", tmp_path / "chelsea-art.png", "-o", tmp_path / "again.png", "--yes")
    assert r.returncode == 0, r.err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(Image.open(tmp_path / "chelsea-art.png")))
    # the live image is served while it lasts, and status says the same as the events
    assert app.get(f"/api/jobs/{job['id']}/preview").headers["content-type"] == "image/png"
    assert app.get(f"/api/jobs/{job['id']}").json()["state"] == "done"
    assert app.get(f"/api/jobs/{job['id']}/files/..%2F..%2Fuploads").status_code == 404


def test_plugin_stage_runs_with_an_uploaded_file_and_a_side_output(app, tint_stage):
    photo = upload(app, png_bytes(gradient(20, 30)), "photo.png")
    tint = upload(app, png_bytes(np.full((4, 4, 3), 128, np.uint8)), "grey.png")
    steps = [{"stage": "t-web-tint", "params": {"tint": f"upload:{tint['id']}", "strength": "1"},
              "outputs": {"report": ".txt", "frames": ".zip"}}]
    job = submit(app, photo["id"], steps).json()
    assert job["spec"] == "t-web-tint:strength=1.0:tint=grey.png:report=photo-report.txt:frames=photo-frames", job
    end = events(app, job["id"])[-1][1]
    assert end["state"] == "done", end
    files = {f["name"]: f["url"] for f in end["files"]}
    assert set(files) == {"photo-art.png", "photo-report.txt", "photo-frames.zip"}
    assert app.get(files["photo-report.txt"]).text == "tinted (20, 30, 3)"
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(app.get(files["photo-frames.zip"]).content)) as z:
        assert z.namelist() == ["frame.png"]
        assert Image.open(io.BytesIO(z.read("frame.png"))).size == (30, 20)


# ---- errors beside their fields ----------------------------------------------------------------------------------
def test_bad_values_give_the_command_lines_messages_by_field(app):
    photo = upload(app, png_bytes(gradient()))
    with pytest.raises(ParamError) as cli_error:
        Pipeline.from_spec("quantize:k=1")
    steps = [{"stage": "quantize", "params": {"k": "1"}}, {"stage": "slic", "params": {"nn": "3"}},
             {"stage": "slic", "params": {"compactness": "abc"}}, {"stage": "nope"}]
    r = app.post("/api/check", json={"input": photo["id"], "steps": steps, "options": {"seed": "-1"}}, headers=POST)
    errors = r.json()["errors"]
    assert r.json()["ok"] is False
    assert errors[0] == {"step": None, "field": "seed", "message": "seed must be at least 0, not '-1'"}
    assert errors[1] == {"step": 0, "field": "k", "message": str(cli_error.value)}
    assert errors[2]["field"] == "nn" and "unknown parameter 'nn'" in errors[2]["message"]
    assert errors[3]["field"] == "compactness" and errors[3]["message"].startswith("slic: compactness='abc'")
    assert errors[4]["step"] == 3 and "unknown stage 'nope'" in errors[4]["message"]
    assert all("\n" not in e["message"] for e in errors)
    r = submit(app, photo["id"], steps[:1])
    assert r.status_code == 400 and r.json()["errors"][0]["message"] == str(cli_error.value)
    r = submit(app, "", [{"stage": "quantize"}])
    assert r.json()["errors"] == [{"step": None, "field": "input", "message": "choose a photo first"}]
    # before any photo, checking still shows the command, with a placeholder name
    r = app.post("/api/check", json={"steps": [{"stage": "slic", "params": {"n": "50"}}]}, headers=POST).json()
    assert r["ok"] and r["command"] == "artfx pipeline slic:n=50 photo.jpg -o photo-art.png"


def test_the_browser_never_names_a_file_on_the_server(app, tmp_path, monkeypatch):
    photo = upload(app, png_bytes(gradient()))
    secret = tmp_path / "secret.png"
    Image.fromarray(gradient()).save(secret)
    monkeypatch.chdir(tmp_path)  # a bare name would find the file here: the guard must refuse it all the same
    cases = {
        "style image=/abs": ("style", {"image": str(secret)}, "image", "no file paths"),
        "style image=../": ("style", {"image": "starry-night|../secret.png"}, "image", "no file paths"),
        "quantize palette=~": ("quantize", {"palette": "~/secret.png"}, "palette", "no file paths"),
        "quantize palette bare": ("quantize", {"palette": "secret.png"}, "palette", "did not upload (secret.png)"),
        "style init bare": ("style", {"init": "secret.png"}, "init", "did not upload"),
        "style weights_file": ("style", {"weights_file": "secret.png"}, "weights_file", "did not upload"),
        "output named": ("quantize", {"palette_out": "out.gpl"}, "palette_out", "chosen by the page"),
        "gone upload": ("quantize", {"palette": "upload:feedface"}, "palette", "upload is gone"),
    }
    for what, (stage, params, field, words) in cases.items():
        r = submit(app, photo["id"], [{"stage": stage, "params": params}])
        assert r.status_code == 400, what
        error = r.json()["errors"][0]
        assert error["field"] == field and words in error["message"], (what, error)
    r = submit(app, photo["id"], [{"stage": "quantize", "outputs": {"palette_out": ".exe"}}])
    assert r.json()["errors"][0]["message"] == "quantize: palette_out: choose .png or .gpl"
    assert not app.session.queue.jobs  # nothing ran
    # an uploaded palette image and the built-in styles are fine
    pal = upload(app, png_bytes(np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)), "pal.png")
    r = app.post("/api/check", json={"input": photo["id"], "steps": [
        {"stage": "quantize", "params": {"palette": f"upload:{pal['id']}", "k": "2"}},
        {"stage": "style", "params": {"image": "great-wave|the-scream"}}]}, headers=POST).json()
    assert r["ok"], r
    assert r["command"].startswith("artfx pipeline 'quantize:k=2:palette=pal.png,style:image=great-wave|the-scream'")


# ---- uploads and their limits ---------------------------------------------------------------------------------------
def test_upload_limits_and_the_decompression_bomb_guard(monkeypatch):
    application = create_app(max_upload=4000, max_pixels=2000)
    with TestClient(application) as client:
        big = client.post("/api/uploads?name=big.png", content=b"\0" * 5000, headers=POST)
        assert big.status_code == 413 and "upload limit of" in big.json()["error"]
        many = client.post("/api/uploads?name=many.png", content=png_bytes(np.zeros((50, 50, 3), np.uint8)),
                           headers=POST)
        assert many.status_code == 413 and "50x50 is more than this page's limit" in many.json()["error"]
        bad = client.post("/api/uploads?name=notes.png", content=b"not an image at all", headers=POST)
        assert bad.status_code == 400 and "not an image" in bad.json()["error"]
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
        bomb = client.post("/api/uploads?name=bomb.png", content=png_bytes(np.zeros((20, 20, 3), np.uint8)),
                           headers=POST)
        assert bomb.status_code == 400 and "decompression bomb" in bomb.json()["error"]
        assert "allow-huge" not in bomb.json()["error"]  # the page has no way around the guard
        odd = client.post("/api/uploads?name=../../x/..%2Fevil.png", content=png_bytes(gradient(8, 8)),
                          headers=POST).json()
        assert odd["name"] == "evil.png"  # a name, never a path
        path = application.state.session.uploads[odd["id"]].path
        assert path.parent.parent == application.state.session.uploads_dir


def test_odd_upload_names_give_commands_that_run_and_show_what_they_are(app, cli, tmp_path, monkeypatch,
                                                                      tint_stage):
    import shlex

    data = png_bytes(gradient(16, 20))
    steps = [{"stage": "quantize", "params": {"k": "3"}}]
    for name in ["-o.png", "--help.png"]:
        up = app.post("/api/uploads", params={"name": name}, content=data, headers=POST).json()
        assert up["name"] == name
        command = app.post("/api/check", json={"input": up["id"], "steps": steps}, headers=POST).json()["command"]
        assert f" ./{name} -o ./{name[:-4]}-art.png" in command, command
        folder = tmp_path / name.strip("-.")
        folder.mkdir()
        (folder / name).write_bytes(data)
        monkeypatch.chdir(folder)  # the command as a user pastes it, beside the photo
        args = shlex.split(command)
        r = cli(*args[1:])
        assert r.returncode == 0, (command, r.err)
        assert colours((folder / f"{name[:-4]}-art.png").read_bytes()) == 3
    # a long name keeps its suffix; a right-to-left override or other hidden characters do not stay
    cases = {"a" * 150 + ".jpeg": ("a" * 95 + ".jpeg"), "\u65e5" * 120 + ".png": "\u65e5" * 65 + ".png",
             "cat\u202egnp.png": "cat-gnp.png", "x\u200by\x1b[2J\u2066.png": "x-y-[2J-.png"}
    for sent, kept in cases.items():
        up = app.post("/api/uploads", params={"name": sent}, content=data, headers=POST).json()
        assert up["name"] == kept
        assert len(kept.encode()) <= 200
        command = app.post("/api/check", json={"input": up["id"], "steps": steps}, headers=POST).json()["command"]
        assert kept in command and not any(c in command for c in "\u202e\u200b\x1b\u2066")
    # typed into a field, it is written out in the command, in bash's $'...' form that makes it again
    typed = [{"stage": "t-web-tint", "params": {"mode": "lum\u202evid"}}]
    command = app.post("/api/check", json={"input": up["id"], "steps": typed}, headers=POST).json()["command"]
    assert "\u202e" not in command and "$'t-web-tint:mode=lum\\u202evid'" in command, command


def test_json_nested_too_deep_or_too_long_is_a_400_not_a_recursion_error(app):
    photo = upload(app, png_bytes(gradient()))
    deep = '{"input": "%s", "steps": %s}' % (photo["id"], "[" * 100000 + "]" * 100000)
    for path in ("/api/check", "/api/jobs"):
        r = app.post(path, content=deep, headers={**POST, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "the request is nested more than 64 levels deep"
    long = '{"steps": [], "pad": "%s"}' % ("x" * (2 << 20))
    r = app.post("/api/check", content=long, headers={**POST, "Content-Type": "application/json"})
    assert r.status_code == 400 and "longer than 1024 KB" in r.json()["error"]
    # brackets inside strings are not nesting; an ordinary form still checks
    r = app.post("/api/check", json={"input": photo["id"], "steps": [{"stage": "quantize", "params": {
        "palette": "[" * 200 + "#000000|#ffffff"}}]}, headers=POST)
    assert r.status_code == 200 and r.json()["errors"][0]["field"] == "palette"
    assert not app.session.queue.jobs


def test_uploads_are_decoded_within_a_memory_budget_and_told_to_retry_when_it_is_held():
    import asyncio
    import threading

    from artfx.web.session import DECODE_BYTES_PER_PIXEL

    photo = png_bytes(np.full((300, 400, 3), 90, np.uint8))  # 120,000 pixels in 1 KB: its cost is its pixels
    cost = 300 * 400 * DECODE_BYTES_PER_PIXEL
    application = create_app(decode_budget=cost * 3 // 2, decode_wait=0.2)
    with TestClient(application) as client:
        budget = application.state.session.decoding
        holding, release = threading.Event(), threading.Event()

        async def another_upload_decoding() -> None:  # what a concurrent upload holds while it decodes
            async with budget.room(cost):
                holding.set()
                await asyncio.get_running_loop().run_in_executor(None, release.wait)

        other = threading.Thread(target=asyncio.run, args=(another_upload_decoding(),))
        other.start()
        assert holding.wait(10)
        busy = client.post("/api/uploads?name=p.png", content=photo, headers=POST)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        assert busy.json()["error"] == "the server is busy decoding other uploads; try again in 2 seconds"
        assert not application.state.session.uploads  # nothing decoded, nothing kept
        small = client.post("/api/uploads?name=s.png", content=png_bytes(gradient(20, 30)), headers=POST)
        assert small.status_code == 200  # one that fits beside it goes through
        release.set()
        other.join(10)
        assert budget.used == 0
        r = client.post("/api/uploads?name=p.png", content=photo, headers=POST)
        assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == (400, 300)
        assert budget.used == 0  # given back
    # alone, an upload larger than the whole budget is still accepted (the largest allowed must be)
    application = create_app(decode_budget=1000)
    with TestClient(application) as client:
        assert client.post("/api/uploads?name=p.png", content=photo, headers=POST).status_code == 200


def test_posts_need_the_header_and_hosts_can_be_limited():
    application = create_app(allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(application, base_url="http://127.0.0.1") as client:
        r = client.post("/api/jobs", json={})
        assert r.status_code == 403 and "X-Artfx" in r.json()["error"]
        assert client.get("/api/info").status_code == 200
        assert client.get("/api/info", headers={"Host": "evil.example"}).status_code == 400
        assert client.get("/").headers["x-content-type-options"] == "nosniff"


# ---- the queue and cancelling ---------------------------------------------------------------------------------------
def test_one_job_at_a_time_per_device_places_shown_and_cancel(app):
    photo = upload(app, png_bytes(gradient(32, 32)))
    style = submit(app, photo["id"], [{"stage": "style", "params": TINY_STYLE}], device="cpu").json()
    first = submit(app, photo["id"], [{"stage": "quantize", "params": {"k": "3"}}], device="cpu").json()
    second = submit(app, photo["id"], [{"stage": "slic", "params": {"n": "20"}}], device="cpu").json()
    assert (style["position"], first["position"], second["position"]) == (0, 1, 2)
    queue = app.session.queue
    assert app.get(f"/api/jobs/{second['id']}").json()["position"] == queue.position(queue.jobs[second["id"]]) == 2
    # the style job runs, reports progress and live images, and waits for nobody
    seen = events(app, style["id"], until="image", timeout=120)
    assert ("state", {"state": "running", "position": 0}) in seen
    assert app.get(seen[-1][1]["url"]).headers["content-type"] == "image/png"
    state = app.get(f"/api/jobs/{first['id']}").json()
    assert (state["state"], state["position"]) == ("queued", 1)
    # cancelling a waiting job takes it out at once, and the one behind it moves up
    assert app.post(f"/api/jobs/{first['id']}/cancel", headers=POST).json()["state"] == "cancelled"
    assert app.get(f"/api/jobs/{second['id']}").json()["position"] == 1
    # cancelling the running style job stops it at its next progress report
    start = time.monotonic()
    app.post(f"/api/jobs/{style['id']}/cancel", headers=POST)
    end = events(app, style["id"])[-1][1]
    assert end["state"] == "cancelled" and "files" not in end
    assert time.monotonic() - start < 10
    end = events(app, second["id"])[-1][1]
    assert end["state"] == "done" and end["position"] == 0


def test_the_session_folder_goes_when_the_app_stops():
    application = create_app()
    with TestClient(application) as client:
        folder = application.state.session.folder
        photo = upload(client, png_bytes(gradient(32, 32)))
        job = submit(client, photo["id"], [{"stage": "style", "params": TINY_STYLE}], device="cpu").json()
        wait_for(lambda: client.get(f"/api/jobs/{job['id']}").json()["state"] == "running", 120)
        assert folder.is_dir() and any((folder / "uploads").iterdir())
    assert not folder.exists()
    assert application.state.session.queue.jobs[job["id"]].state == "cancelled"


# ---- the command ----------------------------------------------------------------------------------------------------
def test_serve_without_the_web_extra_says_how_to_get_it():
    code = ("import sys; sys.modules['uvicorn'] = None; sys.modules['starlette'] = None\n"
            "from artfx.cli import main; sys.exit(main(['serve']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=120)
    err = r.stderr.decode().strip()
    assert r.returncode == 2 and err == "artfx: error: artfx serve needs the web extra: pip install 'artfx[web]'"


def test_help_does_not_import_the_web_framework():
    code = ("import sys; from artfx.cli import main; rc = main(['--help']); "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'torch') if m in sys.modules), rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=120)
    assert r.stdout.decode().strip().splitlines()[-1] == "[] 0"


def test_is_local():
    from artfx.cli.serve import is_local

    assert all(is_local(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.5", "[::1]"))
    assert not any(is_local(h) for h in ("0.0.0.0", "192.168.1.4", "example.org", "::"))


def test_artfx_serve_prints_its_url_opens_it_answers_and_cleans_up_on_ctrl_c(tmp_path):
    opener = tmp_path / "browser.sh"  # what --open starts, through $BROWSER as Python's webbrowser reads it
    opener.write_text(f'#!/bin/sh\necho "$1" > {tmp_path / "opened"}\n')
    opener.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "BROWSER": str(opener)}
    proc = subprocess.Popen([sys.executable, "-m", "artfx", "serve", "--open"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("artfx serve: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[2]
        folder = Path(line.split("results live in ")[1].split(" until")[0])
        assert folder.is_dir()
        with urllib.request.urlopen(url + "api/info", timeout=30) as r:
            assert json.load(r)["version"]
        wait_for(lambda: (tmp_path / "opened").exists())
        assert (tmp_path / "opened").read_text().strip() == url
        request = urllib.request.Request(url + "api/info", headers={"Host": "attacker.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 400  # a rebinding page cannot talk to it under another name
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, proc.stderr.read()
        assert not folder.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

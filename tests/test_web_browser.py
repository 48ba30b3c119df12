"""artfx serve in a real headless browser: Debian's Chromium driven by Selenium through the system chromedriver
(no browser download). The server is the real command (``python -m artfx serve``) in a subprocess, on 127.0.0.1.

Set ARTFX_WEB_SCREENSHOT=docs/web.png to refresh the README's screenshot from the first test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

pytest.importorskip("starlette", reason="the web extra is not installed: pip install -e '.[web]'")
pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[test]'")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip("no Chromium here to drive: apt-get install chromium chromium-driver (.ci/run does, as root)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from artfx.errors import ParamError  # noqa: E402
from artfx.io import read_recipe  # noqa: E402
from artfx.pipeline import Pipeline  # noqa: E402

SAMPLE = ROOT / "artfx" / "web" / "static" / "samples" / "chelsea.jpg"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1400,1200",
         "--hide-scrollbars"]


@pytest.fixture(scope="module")
def server():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "artfx", "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    line = proc.stdout.readline()
    if not line.startswith("artfx serve: http://127.0.0.1:"):
        proc.kill()
        pytest.fail(f"artfx serve did not start: {line}{proc.stderr.read()}")
    yield line.split()[2]
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


def wait(driver, predicate, timeout: float = 60, what: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d), message=what)


def css(driver, selector: str):
    return driver.find_element(By.CSS_SELECTOR, selector)


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "1", what="page ready")


def upload_photo(driver) -> None:
    css(driver, "#file").send_keys(str(SAMPLE))  # what choosing a file in the dialog does
    wait(driver, lambda d: d.execute_script(
        "const i = document.getElementById('before'); return i.complete && i.naturalWidth"), what="photo shown")


def set_field(driver, step: str, name: str, value: str) -> None:
    field = css(driver, f'#steps [data-stage="{step}"] [name="{name}"]')
    if not field.is_displayed():
        field.find_element(By.XPATH, "ancestor::details").click()
    field.clear()
    field.send_keys(value)


COUNT_COLOURS = """
const done = arguments[arguments.length - 1];
const img = document.getElementById('after');
const count = () => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  done([seen.size, c.width, c.height]);
};
if (img.complete && img.naturalWidth) count(); else img.addEventListener('load', count);
"""


def test_upload_set_k_run_see_four_colours_and_download_with_recipe(server, browser, downloads):
    open_page(browser, server)
    upload_photo(browser)
    set_field(browser, "quantize", "k", "4")
    wait(browser, lambda d: "quantize:k=4 chelsea.jpg" in css(d, "#command").text, what="command updated")
    assert css(browser, "#toml").text.splitlines()[:3] == ["[[step]]", 'stage = "quantize"', "k = 4"]
    css(browser, "#run").click()
    link = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#downloads a.main"), what="result")[0]
    assert "done in" in css(browser, "#status").text
    assert css(browser, "#bar").get_attribute("style") == "width: 100%;"
    # the page shows the result: 4 colours, the photo's size, beside the photo (before/after slider)
    count, width, height = browser.execute_async_script(COUNT_COLOURS)
    assert (count, width, height) == (4, 384, 255)
    assert "has-after" in css(browser, "#compare").get_attribute("class")
    assert_whole_result_shown(browser, 384 / 255)
    screenshot = Path(os.environ.get("ARTFX_WEB_SCREENSHOT") or downloads / "page.png")
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(screenshot))
    assert Image.open(screenshot).size[0] >= 1000
    # download it as a person would: the PNG carries the recipe the command shows
    link.click()
    target = downloads / "chelsea-art.png"
    wait(browser, lambda d: target.exists() and not list(downloads.glob("*.crdownload")), what="download")
    recipe = read_recipe(target)
    assert recipe["spec"] == "quantize:k=4" and recipe["inputs"][0]["name"] == "chelsea.jpg"
    assert len(np.unique(np.asarray(Image.open(target).convert("RGB")).reshape(-1, 3), axis=0)) == 4


VIEW = """
const box = (id) => { const r = document.getElementById(id).getBoundingClientRect();
                      return [r.left, r.top, r.width, r.height]; };
return {frame: box(document.getElementById('frame') ? 'frame' : 'compare'), pane: box('compare'), before: box('before'), after: box('after'),
        clip: getComputedStyle(document.getElementById('after-wrap')).clipPath,
        transforms: ['before', 'after'].map((id) => getComputedStyle(document.getElementById(id)).transform)};
"""


def assert_whole_result_shown(driver, aspect: float) -> dict:
    """The result is shown whole: the frame has the picture's shape and lies inside the pane, the result fills
    it unscaled and uncovered (the slider at 0), the photo lies exactly under it."""
    v = driver.execute_script(VIEW)
    (fx, fy, fw, fh), (px, py, pw, ph) = v["frame"], v["pane"]
    assert abs(fw / fh - aspect) < 0.01, v
    assert px - 0.5 <= fx and fx + fw <= px + pw + 0.5 and py - 0.5 <= fy and fy + fh <= py + ph + 0.5, v
    assert fw >= min(pw, 0.6 * driver.execute_script("return window.innerHeight") * aspect) - 1, v  # fitted
    assert v["after"] == v["frame"] and v["before"] == v["frame"], v
    assert v["clip"] == "inset(0px 0px 0px 0%)" and v["transforms"] == ["none", "none"], v
    return v


def test_the_view_fits_the_picture_and_zooms_on_demand(server, browser):
    open_page(browser, server)
    upload_photo(browser)
    css(browser, "#run").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#downloads a.main"), what="result")
    fitted = assert_whole_result_shown(browser, 384 / 255)
    # the slider uncovers the photo from the left
    browser.execute_script("const s = document.getElementById('slider'); s.value = 40;"
                           "s.dispatchEvent(new Event('input'))")
    assert browser.execute_script(VIEW)["clip"] == "inset(0px 0px 0px 40%)"
    # zoom on demand: both pictures alike, inside the same frame; "fit" and a double click go back
    css(browser, '.zoom [data-zoom="2"]').click()
    double = ["matrix(2, 0, 0, 2, 0, 0)"] * 2  # once the short transition is over
    wait(browser, lambda d: d.execute_script(VIEW)["transforms"] == double, 5, "zoomed in")
    zoomed = browser.execute_script(VIEW)
    assert abs(zoomed["after"][2] - 2 * fitted["frame"][2]) < 1 and zoomed["frame"] == fitted["frame"]
    assert zoomed["before"] == zoomed["after"]
    css(browser, '.zoom [data-zoom="1"]').click()
    wait(browser, lambda d: d.execute_script(VIEW)["transforms"] == ["none", "none"], 5, "fitted again")
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).double_click(css(browser, "#frame")).perform()
    wait(browser, lambda d: d.execute_script(VIEW)["transforms"] == ["matrix(2, 0, 0, 2, 0, 0)"] * 2, 5, "dblclick")
    ActionChains(browser).double_click(css(browser, "#frame")).perform()
    wait(browser, lambda d: d.execute_script(VIEW)["transforms"] == ["none", "none"], 5, "dblclick back")


def test_a_bad_value_shows_its_message_beside_the_field(server, browser):
    with pytest.raises(ParamError) as cli:
        Pipeline.from_spec("quantize:k=1")
    open_page(browser, server)
    upload_photo(browser)
    set_field(browser, "quantize", "k", "1")
    beside = '#steps [data-stage="quantize"] [data-field="k"] .err'
    wait(browser, lambda d: css(d, beside).text == str(cli.value), what=f"the message {cli.value!r} beside k")
    assert "invalid" in css(browser, '#steps [data-stage="quantize"] [name="k"]').get_attribute("class")
    css(browser, "#run").click()
    wait(browser, lambda d: css(d, "#status").text == str(cli.value), what="run refused with the message")
    set_field(browser, "quantize", "k", "5")
    wait(browser, lambda d: css(d, beside).text == "", what="message gone once the value is good")


def test_cancel_stops_a_style_run(server, browser):
    open_page(browser, server)
    upload_photo(browser)
    css(browser, '#steps [data-stage="quantize"] [data-action="remove"]').click()
    Select(css(browser, "#add-stage")).select_by_value("style")
    css(browser, "#add-step").click()
    for name, value in {"size": "32", "start_size": "32", "iterations": "100000"}.items():
        set_field(browser, "style", name, value)
    Select(css(browser, "#opt-device")).select_by_value("cpu")
    wait(browser, lambda d: "iterations=100000" in css(d, "#command").text, what="command updated")
    css(browser, "#run").click()
    wait(browser, lambda d: css(d, "#status").text.startswith("step 1 (style)"), 120, "style progress")
    wait(browser, lambda d: "has-after" in css(d, "#compare").get_attribute("class"), 60, "a live image")
    css(browser, "#cancel").click()
    start = time.monotonic()
    wait(browser, lambda d: css(d, "#status").text == "cancelled", 30, "cancelled")
    assert time.monotonic() - start < 10
    assert css(browser, "#run").is_enabled() and not css(browser, "#cancel").is_enabled()
    assert not browser.find_elements(By.CSS_SELECTOR, "#downloads a")
    # the server agrees: the job stopped, nothing was written
    info = json.load(urllib.request.urlopen(server + "api/info", timeout=10))
    assert info["version"]

"""The web UI in a real browser: headless Chromium (the apt package, driven by playwright) against
`qwenimage serve`'s app with the UI at /ui, on loopback, with the tiny edit model at 64x64 and 2 steps.

Set QWENIMAGE_UI_SCREENSHOT=docs/serve/ui.png to refresh the screenshot in the docs from this run.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from qwenimage.serve import PipelineWorker, ServeConfig, create_app
from qwenimage.serve.loopback import LoopbackServer
from qwenimage.serve.ui import mount_ui

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER = pytest.mark.skipif(CHROMIUM is None, reason="needs the chromium browser (apt-get install chromium; "
                                                      "install.sh does it when run as root)")

WAIT_MS = 90_000  # a first generation loads nothing (the worker is loaded), but 2 CPU cores may be busy


@pytest.fixture(scope="module")
def model_dir(tiny_pipeline_dir, tmp_path_factory):
    """The tiny edit folder with UI-friendly defaults (64x64, 2 steps), so the form starts ready to run."""
    folder = tmp_path_factory.mktemp("ui") / "tiny_edit"
    shutil.copytree(tiny_pipeline_dir, folder)
    settings = json.loads((folder / "qwenimage.json").read_text())
    settings["defaults"] = {"num_steps": 2, "width": 64, "height": 64}
    (folder / "qwenimage.json").write_text(json.dumps(settings))
    return folder


@pytest.fixture(scope="module")
def server(model_dir):
    config = ServeConfig(model=model_dir, device="cpu", dtype="fp32", max_batch=4)
    worker = PipelineWorker.load(model_dir, device="cpu", dtype="fp32")
    with LoopbackServer(mount_ui(create_app(config, worker), path="/ui")) as server:
        yield server.url


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(f"{server}/ui/")
        yield page
        browser.close()


@BROWSER
def test_text_to_image_shows_the_image_and_its_parameters(page):
    page.locator("#t2i-prompt textarea").fill("a red fox in the snow")
    page.locator("#t2i-run").click()
    expect(page.locator("#t2i-status")).to_contain_text("done: 1 image", timeout=WAIT_MS)
    assert natural_size(page, "#t2i-results img") == [64, 64]
    expect(page.locator("#history")).to_contain_text("a red fox in the snow | 64x64, 2 steps, no CFG, seed")
    if os.environ.get("QWENIMAGE_UI_SCREENSHOT"):
        page.screenshot(path=os.environ["QWENIMAGE_UI_SCREENSHOT"], full_page=True)


@BROWSER
def test_an_edit_of_an_uploaded_image(page, tmp_path):
    picture = tmp_path / "picture.png"
    Image.new("RGB", (48, 32), (200, 30, 30)).save(picture)
    page.get_by_role("tab", name="Edit").click()
    upload_to_editor(page, "#edit-image", picture)
    for side, value in (("width", "64"), ("height", "48")):
        page.locator(f"#edit-{side} input").fill(value)
        page.locator(f"#edit-{side} input").press("Tab")
    page.locator("#edit-prompt textarea").fill("make it blue")
    page.locator("#edit-run").click()
    expect(page.locator("#edit-status")).to_contain_text("done: 1 image", timeout=WAIT_MS)
    assert natural_size(page, "#edit-results img") == [64, 48]
    expect(page.locator("#history")).to_contain_text("make it blue | 64x48, 2 steps, no CFG, seed")


def upload_to_editor(page, selector: str, picture, attempts: int = 3) -> None:
    """Put `picture` in the ImageEditor under `selector` and wait until the editor holds it. The editor reads its
    value from its canvas when a run is submitted, so an image on the canvas is an image sent; the editor's
    'Upload an image or select the draw tool to start' hint goes away at that moment. A file chosen while the
    editor's canvas is still starting up can be dropped (seen on a loaded 2-core CI machine), so the file is
    chosen again, as a user would, when the hint stays."""
    editor = page.locator(selector)
    expect(editor.locator("canvas").first).to_be_attached(timeout=WAIT_MS)
    hint = editor.get_by_text("Upload an image or select the draw tool to start")
    for attempt in range(attempts):
        editor.locator("input[type=file]").first.set_input_files(str(picture))
        try:
            expect(hint).to_have_count(0, timeout=20_000)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise


def natural_size(page, selector: str) -> list[int]:
    """[width, height] of the first image under `selector`, once the browser has loaded it."""
    page.wait_for_function("sel => { const img = document.querySelector(sel); "
                           "return img && img.complete && img.naturalWidth > 0 }", arg=selector, timeout=WAIT_MS)
    return page.locator(selector).first.evaluate("img => [img.naturalWidth, img.naturalHeight]")


def test_the_ui_asks_for_the_api_key():
    """With --api-key the page is behind a login whose password is the key; the API still wants the header."""
    from tests.unit.test_serve import FakeWorker

    app = mount_ui(create_app(ServeConfig(api_key="secret"), FakeWorker()), path="/ui")
    with TestClient(app) as client:
        assert client.get("/ui/config").status_code == 401
        assert client.post("/ui/login", data={"username": "me", "password": "wrong"}).status_code == 400
        assert client.post("/ui/login", data={"username": "me", "password": "secret"}).status_code == 200
        assert client.get("/ui/config").status_code == 200
        assert client.get("/v1/models").status_code == 401

"""The explorer's page in a real browser: pytest + Playwright driving Debian's Chromium
(`executable_path`; Playwright's own browser download needs the internet). It opens the page
on a dataset sample's top-5, uploads an image, opens a layer's map, a unit's dataset examples
and the occlusion map, and saves a screenshot of each step: in $ALEXNET_SCREENSHOTS when set
(kept), else in the test's tmp_path (kept only when the test fails)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from conftest import colour_class_tree, write_checkpoint

pytest.importorskip("uvicorn", reason="the `explore` extra is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(the `dev` extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: install "
                                 "Debian's `chromium` (scripts/bootstrap.sh does, as root)")]


@pytest.fixture
def server(tmp_path):
    """The explorer on a tiny paper net and an image folder, served by uvicorn in a thread."""
    import uvicorn

    from alexnet.explore import bind, make_session
    from alexnet.explore.server import build_app

    tree = colour_class_tree(tmp_path / "data", per_class=12)
    run = tmp_path / "run"
    run.mkdir()
    write_checkpoint(run / "best.pt", {"source": str(tree), "resize": 72, "crop": 64})
    sock, url = bind("127.0.0.1", 0)
    config = uvicorn.Config(build_app(make_session(str(run))), log_level="warning",
                            lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield {"url": url, "tree": tree}
    srv.should_exit = True
    thread.join(10)
    sock.close()


def test_the_page_in_chromium(server, tmp_path):
    shots = Path(os.environ.get("ALEXNET_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server["url"])

            # opens on a dataset sample, already analysed: its top-5 as bars
            page.wait_for_selector("#top5-0 .bar")
            assert "sample 0" in page.inner_text("#current")
            assert page.locator("#top5-0 .bar").count() == 3  # three classes
            page.screenshot(path=shots / "1-sample-top5.png")

            # upload an image: the current image and its top-5 change
            page.set_input_files("#file", str(server["tree"] / "class2" / "5.png"))
            page.wait_for_function("document.querySelector('#current').textContent"
                                   ".includes('5.png')")
            page.wait_for_selector("#top5-0 .bar")
            page.screenshot(path=shots / "2-upload.png")

            # a bad file: a message in the page, and the page still works
            page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                                  "buffer": b"not an image"}])
            page.wait_for_selector("#message.error")
            assert "not an image" in page.inner_text("#message")
            assert "5.png" in page.inner_text("#current")  # the last good image stays

            # layers: conv2's two towers side by side; click a map to see it large
            page.click(".tab[data-tab=layers]")
            page.click("#layer-buttons button[data-layer=conv2]")
            atlases = page.locator("#layers .atlas")
            atlases.nth(1).wait_for()
            assert atlases.count() == 2
            page.wait_for_function("[...document.querySelectorAll('#layers .atlas')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            atlases.nth(1).click(position={"x": 3, "y": 3})
            page.wait_for_selector("#large-0 h4")
            assert "conv2, map 128" in page.inner_text("#large-0 h4")  # tower 2's first map
            page.screenshot(path=shots / "3-layer.png", full_page=True)

            # a unit: the dataset pass runs once with a progress bar, then 9 examples
            page.click("#large-0 .to-unit")
            page.wait_for_selector("#units .unit-example img", timeout=60_000)
            assert page.locator("#units .unit-example").count() == 9
            assert "conv2 unit 128" in page.inner_text("#units")
            page.wait_for_timeout(300)
            page.screenshot(path=shots / "4-unit.png", full_page=True)

            # where it looks: occlusion over the image
            page.click(".tab[data-tab=where]")
            page.check("input[name=method][value=occlusion]")
            page.wait_for_selector("#where-0 img.overlay")
            assert "squares" in page.inner_text("#where-0")
            page.wait_for_timeout(300)
            page.screenshot(path=shots / "5-occlusion.png")
        finally:
            browser.close()
    assert errors == []
    assert len(list(shots.glob("*.png"))) == 5

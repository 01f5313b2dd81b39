"""`alexnet explore`: every endpoint of the server through Starlette's TestClient (no socket),
on a tiny `paper` checkpoint and an image folder made here; bad input, path traversal, the
dataset pass and its cache, two checkpoints side by side, and the command itself."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import colour_class_tree, write_checkpoint

pytest.importorskip("starlette", reason="the `explore` extra is not installed")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (the `dev` extra)")

from starlette.testclient import TestClient  # noqa: E402

from alexnet.data import load_image, preprocess_images  # noqa: E402
from alexnet.evaluation.kernel_colour import kernel_chroma  # noqa: E402
from alexnet.evaluation.predict import load_classifier  # noqa: E402
from alexnet.explore import make_session  # noqa: E402
from alexnet.explore.analysis import analyse, occlusion_grid, receptive_field  # noqa: E402
from alexnet.explore.server import build_app  # noqa: E402

SECRET = "top secret: outside the run and data folders"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An image folder (3 classes × 12), a run trained (so its config says) on it, a second
    run with other weights, and a file outside both that nothing may serve."""
    root = tmp_path_factory.mktemp("explore")
    tree = colour_class_tree(root / "data", per_class=12)
    data = {"source": str(tree), "resize": 72, "crop": 64}
    run = root / "run"
    run.mkdir()
    write_checkpoint(run / "best.pt", data)
    other = root / "other"
    other.mkdir()
    write_checkpoint(other / "best.pt", data, seed=1)
    (root / "secret.txt").write_text(SECRET)
    (tree / "secret.txt").write_text(SECRET)  # inside the data folder, but not an image
    session = make_session(str(run))
    return {"root": root, "tree": tree, "run": run, "other": other, "session": session,
            "client": TestClient(build_app(session))}


def png_bytes(path: Path) -> bytes:
    return path.read_bytes()


def test_info_and_the_first_sample_analysed(world):
    c = world["client"]
    info = c.get("/api/info").json()
    assert info["models"][0]["name"] == "paper" and info["models"][0]["towers"] == 2
    assert info["data"]["samples"] > 0 and info["data"]["store"] > 0
    first = c.get(f"/api/analyses/{info['first']}").json()
    assert first["name"] == "sample 0" and first["label"] in ("class0", "class1", "class2")
    top = first["models"][0]["top5_centre"]
    assert len(top) == 3  # three classes
    assert [r["prob"] for r in top] == sorted((r["prob"] for r in top), reverse=True)
    assert abs(sum(r["prob"] for r in top) - 1) < 1e-4
    page = c.get("/")
    assert page.status_code == 200 and "AlexNet explorer" in page.text
    assert c.get("/static/app.js").status_code == 200


def test_upload_predicts_as_alexnet_predict_does(world):
    c = world["client"]
    image = world["tree"] / "class2" / "3.png"
    r = c.post("/api/analyse?name=3.png", content=png_bytes(image))
    assert r.status_code == 200, r.text
    got = r.json()["models"][0]
    for views, key in (("center", "top5_centre"), ("ten", "top5_ten")):
        want = load_classifier(str(world["run"]), views=views, device="cpu")
        probs = want.probabilities([load_image(image)])[0]
        for row in got[key]:
            assert row["prob"] == pytest.approx(float(probs[row["class"]]), abs=1e-5)
            assert row["name"] == want.classes[row["class"]]


@pytest.mark.parametrize("body, status, words", [
    (b"this is not an image", 400, "not an image"),
    (b"", 400, "empty"),
    (None, 400, "cannot read image"),  # a PNG cut in half
])
def test_bad_uploads_get_a_message_and_the_server_goes_on(world, body, status, words):
    c = world["client"]
    if body is None:
        body = png_bytes(world["tree"] / "class0" / "0.png")[:200]
    r = c.post("/api/analyse?name=bad", content=body)
    assert r.status_code == status and words in r.json()["error"]
    assert c.get("/api/info").status_code == 200


def test_too_large_uploads_are_refused(world):
    session = make_session(str(world["run"]))
    session.max_bytes, session.max_pixels = 5000, 50 * 50
    c = TestClient(build_app(session))
    r = c.post("/api/analyse", content=b"\0" * 6000)
    assert r.status_code == 413 and "5,000" in r.json()["error"]
    buf = io.BytesIO()
    Image.new("RGB", (60, 60)).save(buf, format="PNG")  # small file, too many pixels
    r = c.post("/api/analyse", content=buf.getvalue())
    assert r.status_code == 400 and "60×60 pixels" in r.json()["error"]
    assert c.get("/api/info").status_code == 200


def test_maps_are_the_networks_layers(world):
    """conv1's maps are ReLU(conv1(x)); pool5 and fc7 are the model's own `embed`."""
    session = world["session"]
    ex = session.explorers[0]
    image = load_image(world["tree"] / "class1" / "2.png")
    a = analyse(ex, image)
    x = a.view[None]
    with torch.no_grad():
        conv1 = torch.relu(ex.model.features.conv1(x))[0]
        assert torch.allclose(a.maps["conv1"], conv1, atol=1e-5)
        assert torch.allclose(a.maps["pool5"].flatten(), ex.model.embed(x, "pool5")[0],
                              atol=1e-5)
        assert torch.allclose(a.maps["fc7"], ex.model.embed(x, "fc7")[0], atol=1e-4)
    assert receptive_field(ex.model, "conv1") == (11, 4, 5)
    assert receptive_field(ex.model, "conv5")[:2] == (163, 16)  # Fig. 2's conv5 sees 163 px


def test_layer_pictures(world):
    c = world["client"]
    a = c.post("/api/samples/1/analyse").json()
    key = a["id"]
    conv2 = next(x for x in a["models"][0]["layers"] if x["name"] == "conv2")
    assert [t["first"] for t in conv2["towers"]] == [0, 128]  # two towers of 128 maps
    r = c.get(f"/api/analyses/{key}/0/layers/conv2.png?tower=1")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    t = conv2["towers"][1]
    width, height = Image.open(io.BytesIO(r.content)).size
    assert (width, height) == (t["cols"] * conv2["cell"][1] - 1, t["rows"] * conv2["cell"][0] - 1)
    big = Image.open(io.BytesIO(c.get(f"/api/analyses/{key}/0/maps/conv2/200.png").content))
    assert big.size == (64, 64) and big.mode == "RGBA"
    for url, words in ((f"/api/analyses/{key}/0/layers/conv9.png", "unknown layer"),
                       (f"/api/analyses/{key}/0/layers/fc7.png", "no maps"),
                       (f"/api/analyses/{key}/0/layers/conv2.png?tower=2", "no tower"),
                       (f"/api/analyses/{key}/0/maps/conv2/256.png", "no map 256")):
        r = c.get(url)
        assert r.status_code == 400 and words in r.json()["error"], url
    assert c.get("/api/analyses/nope/0/view.png").status_code == 404
    assert c.get(f"/api/analyses/{key}/1/view.png").status_code == 404  # no second model


def test_where_it_looks(world):
    c = world["client"]
    key = c.post("/api/samples/0/analyse").json()["id"]
    r = c.get(f"/api/analyses/{key}/0/where/occlusion?class=1")
    assert r.status_code == 200, r.text
    o = r.json()
    assert (o["patch"], o["stride"]) == occlusion_grid(64, o["grid"])
    assert o["name"] == "class1" and o["seconds"] >= 0
    png = c.get(o["url"])
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (64, 64)
    by_name = c.get(f"/api/analyses/{key}/0/where/gradcam?class=class2").json()
    assert by_name["class"] == 2 and by_name["layer"] == "conv5"
    assert c.get(by_name["url"]).status_code == 200
    for cls in ("3", "-1", "zebra", ""):
        r = c.get(f"/api/analyses/{key}/0/where/occlusion?class={cls}")
        assert r.status_code == 400 and "unknown class" in r.json()["error"], cls
    assert c.get(f"/api/analyses/{key}/0/gradcam.png?class=7").status_code == 400
    assert c.get(f"/api/analyses/{key}/0/where/deconv?class=1").status_code == 404


def test_occlusion_finds_the_covered_evidence(world):
    """An occlusion sweep over an image whose class evidence is one bright corner marks that
    corner: the map is largest where the squares covered it."""
    from alexnet.explore.analysis import occlusion, occlusion_map

    ex = world["session"].explorers[0]
    image = torch.full((3, 72, 72), 128, dtype=torch.uint8)
    image[:, :30, :30] = 255
    a = analyse(ex, image)
    cls = int(a.probs_centre.argmax())
    heat = occlusion_map(occlusion(ex, a.view, grid=8), cls, ex.size)
    corner, rest = heat[:24, :24].abs().mean(), heat[40:, 40:].abs().mean()
    assert corner > rest


def test_kernels(world):
    c = world["client"]
    k = c.get("/api/kernels/0").json()
    weight = world["session"].explorers[0].model.conv1.weight
    assert k["kernels"] == 96 and k["towers"] == 2 and len(k["urls"]) == 2
    assert k["chroma"] == pytest.approx(kernel_chroma(weight).tolist(), abs=1e-4)
    assert [t["kernels"] for t in k["split"]] == [[0, 48], [48, 96]]
    img = Image.open(io.BytesIO(c.get(k["urls"][1]).content))
    assert img.size == (8 * (11 * 4 + 2), 6 * (11 * 4 + 2))  # 48 kernels, 8 a row
    assert c.get("/api/kernels/0/2.png").status_code == 404
    assert c.get("/api/kernels/3").status_code == 404


def test_dataset_pass_neighbours_units_and_cache(world):
    session = world["session"]
    c = world["client"]
    assert c.post("/api/index/0").json()["state"] in ("running", "ready")
    session.jobs[0].wait(60)
    status = c.get("/api/index/0").json()
    assert status["state"] == "ready" and status["done"] == status["total"], status
    key = c.post("/api/samples/2/analyse").json()["id"]

    near = c.get(f"/api/analyses/{key}/0/neighbours?k=5").json()["neighbours"]
    result = session.jobs[0].result
    query = session.analyses[key].results[0].maps["fc7"]
    brute = (result["features"].float() - query).norm(dim=1)
    assert [n["index"] for n in near] == brute.argsort()[:5].tolist()
    codes = c.get(f"/api/analyses/{key}/0/neighbours?by=codes&k=4").json()["neighbours"]
    assert len(codes) == 4 and [n["distance"] for n in codes] == sorted(
        n["distance"] for n in codes)
    assert c.get(codes[0]["url"]).headers["content-type"] == "image/jpeg"
    assert c.get(f"/api/analyses/{key}/0/neighbours?by=pixels").status_code == 400

    unit = c.get("/api/units/0/conv5/7").json()
    values = [e["value"] for e in unit["examples"]]
    assert len(values) == 9 and values == sorted(values, reverse=True)
    best = unit["examples"][0]
    ex = session.explorers[0]
    again = analyse(ex, session.dataset.image("train", best["index"]))
    assert float(again.maps["conv5"][7].max()) == pytest.approx(best["value"], rel=1e-4)
    patch = Image.open(io.BytesIO(c.get(best["url"]).content))
    assert 0 < patch.size[0] <= 64
    fc = c.get("/api/units/0/fc8/1").json()  # fc8: the logits; unit 1: class 1's
    assert fc["field"] is None
    store = [session.dataset.image("train", i) for i in range(len(session.dataset.store))]
    with torch.no_grad():
        logits = ex.model(preprocess_images(store, ex.normalization, ex.preprocess))[:, 1]
    assert [e["value"] for e in fc["examples"]] == pytest.approx(
        sorted(logits.tolist(), reverse=True)[:9], rel=1e-4)
    for url, status in (("/api/units/0/conv5/256", 400), ("/api/units/0/conv7/0", 400),
                        ("/api/units/0/conv5/7/9.png", 404), ("/api/units/1/conv5/0", 404)):
        assert c.get(url).status_code == status, url

    cache = list((world["run"] / "explore-cache").glob("*.pt"))
    assert len(cache) == 1
    again = make_session(str(world["run"]))  # a new server: the pass is not run again
    assert again.jobs[0].start()["message"] == "from the cache"


def test_nothing_outside_is_served(world):
    c = world["client"]
    tree = world["tree"]
    urls = ["/static/../secret.txt", "/static/%2e%2e/%2e%2e/secret.txt",
            "/static/..%2f..%2fsecret.txt", "/static/%2e%2e%2fsecret.txt",
            f"/static/{world['root']}/secret.txt", "/static//etc/passwd",
            "/api/samples/../../secret.txt", "/api/samples/-1.jpg", "/api/samples/99999.jpg",
            "/api/store/99999.jpg", "/api/samples/secret.txt", f"/api/samples/{tree}/secret.txt",
            "/../secret.txt", "/%2e%2e/secret.txt", "/api/units/0/..%2F..%2Fsecret/0",
            "/api/analyses/..%2F..%2Fsecret.txt"]
    for url in urls:
        r = c.get(url)
        assert r.status_code in (400, 404, 405), (url, r.status_code)
        assert SECRET not in r.text, url
    r = c.post("/api/analyse?name=../../secret.txt", content=b"")
    assert r.status_code == 400 and SECRET not in r.text


def test_without_data_uploads_still_work(world, tmp_path):
    ck = write_checkpoint(tmp_path / "lonely.pt")  # its data source is gone
    session = make_session(str(ck))
    c = TestClient(build_app(session))
    info = c.get("/api/info").json()
    assert info["data"] is None and info["first"] is None and "no dataset" in info["data_note"]
    assert c.get("/api/samples").json()["samples"] == []
    r = c.post("/api/index/0")
    assert r.status_code == 400 and "--data" in r.json()["error"]
    image = png_bytes(world["tree"] / "class1" / "0.png")
    assert c.post("/api/analyse", content=image).status_code == 200
    with_data = make_session(str(ck), data=str(world["tree"]))  # --data gives it one
    assert with_data.dataset is not None and with_data.first is not None


def test_compare_two_checkpoints(world):
    session = make_session(str(world["run"]), compare=str(world["other"]))
    c = TestClient(build_app(session))
    assert len(c.get("/api/info").json()["models"]) == 2
    a = c.post("/api/samples/0/analyse").json()
    assert len(a["models"]) == 2
    assert a["models"][0]["top5_centre"] != a["models"][1]["top5_centre"]
    assert c.get(f"/api/analyses/{a['id']}/1/layers/conv1.png").status_code == 200
    assert c.get(f"/api/analyses/{a['id']}/2/view.png").status_code == 404
    assert c.get("/api/kernels/1").json()["chroma"] != c.get("/api/kernels/0").json()["chroma"]


def test_cli_refuses_a_missing_checkpoint(capsys, tmp_path):
    from alexnet.cli import main

    assert main(["explore", str(tmp_path / "nope.pt")]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_serves_on_localhost_and_stops_on_ctrl_c(world):
    """The command prints its URL (127.0.0.1 unless --host), answers, and stops on SIGINT."""
    import httpx

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "alexnet", "explore", str(world["run"]),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("alexnet explore: http://127.0.0.1:"), line
        url = line.split()[2]
        deadline = time.time() + 30
        while True:
            try:
                assert httpx.get(url + "api/info", timeout=5).status_code == 200
                break
            except httpx.TransportError:
                assert time.time() < deadline
                time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


@pytest.mark.parametrize("name", ["original", "half", "owt", "cifar4"])
def test_every_model_shows_its_layers(name):
    """Each model's conv layers are found in Fig. 2's names, rectified (also `original`'s
    conv1, whose ReLU comes after LRN and pooling), with conv1's receptive field of 11 px at
    stride 4 and Grad-CAM at the last conv layer's size."""
    from alexnet.explore.analysis import Explorer, grad_cam
    from alexnet.models import create_model

    options = {} if name == "cifar4" else {"image_size": 64}
    model = create_model(name, num_classes=4, **options)
    size = 32 if name == "cifar4" else 64
    ex = Explorer(model, list("abcd"), {"mean": torch.full((3, 1, 1), 120.0),
                                        "std": torch.full((3, 1, 1), 60.0)},
                  {"resize": size, "crop": None, "channels": 3, "size": size}, name)
    image = torch.randint(0, 256, (3, size + 8, size + 8), dtype=torch.uint8)
    a = analyse(ex, image)
    convs = [t.name for t in ex.taps if t.kind == "conv"]
    assert convs == [f"conv{i + 1}" for i in range(len(convs))] and len(convs) >= 2
    assert all(float(a.maps[c].min()) >= 0 for c in convs)
    assert ex.towers == (2 if name in ("paper", "original") else 1)
    if name != "cifar4":
        assert receptive_field(model, "conv1")[:2] == (11, 4)
    assert grad_cam(ex, a.view, 1).shape == a.maps[convs[-1]].shape[1:]


def test_images_in_memory_are_a_dataset_too(eval_data, tmp_path):
    """A source registered in memory (alexnet.data.memory) serves its images by number."""
    data = eval_data(n=12)
    ck = write_checkpoint(tmp_path / "mem.pt", data)
    session = make_session(str(ck))
    c = TestClient(build_app(session))
    assert c.get("/api/info").json()["data"]["samples"] == 12
    r = c.get("/api/samples/5.jpg?side=32")
    assert r.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(r.content)).size) <= 32
    assert c.post("/api/samples/5/analyse").json()["label"] == "class2"  # 5 % 3 classes

"""`alexnet report RUN_DIR`: self-contained HTML with every figure and the error table, a
Markdown twin, with and without the data; rendering in headless Chromium (slow)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from alexnet.cli import main
from alexnet.evaluation.report import build_report, reference_rows
from conftest import EVAL_SIZE, UNREACHABLE, write_checkpoint


@pytest.fixture(scope="module")
def six(eval_data):
    """A registered source of 6 images (3 classes) the tests evaluate the run on."""
    return eval_data(n=6)["source"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder whose own data (memory:eval-checkpoint-data) is not registered."""
    d = tmp_path_factory.mktemp("run")
    write_checkpoint(d / "best.pt", epoch=4)
    (d / "config.yaml").write_text(yaml.safe_dump({"recipe": "test", "model": {"name": "paper"},
                                                   "data": {"source": f"memory:{UNREACHABLE}"}}))
    recs = []
    for e in range(4):
        lr = 0.01 if e < 2 else 0.001
        recs += [{"epoch": e, "split": "train", "loss": 1.5 - 0.1 * e, "lr": lr},
                 {"epoch": e, "split": "val", "loss": 1.4 - 0.1 * e, "top1_err": 0.6 - 0.1 * e,
                  "top5_err": 0.0, "lr": lr}]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return d


def _embedded_pngs(text):
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)


def test_report_with_data_has_every_figure_and_the_error_table(run_dir, six, tmp_path):
    r = build_report(run_dir, tmp_path / "rep", data=six, progress=False, device="cpu")
    assert r["evaluated"]
    html = (tmp_path / "rep" / "report.html").read_text()
    figs = r["figures"]
    assert set(figs) == {"learning curves", "conv1 kernels (Fig. 3)", "confusion matrix",
                         "top-5 predictions (Fig. 4, left)"}
    embedded = _embedded_pngs(html)
    assert len(embedded) == 4
    for path in figs.values():  # each PNG file is embedded byte for byte
        assert base64.b64encode(Path(path).read_bytes()).decode() in embedded
    for head in ("centre top-1", "centre top-5", "ten-view top-1", "ten-view top-5"):
        assert head in html
    assert f"this run: best.pt evaluated on {six}" in html
    assert "training log, last epoch (4)" in html and "30.00%" in html  # 0.6 - 0.3
    assert f"Evaluated best.pt on {six} (all 6 images) with center and ten views" in html
    assert "recipe: test" in html  # the resolved config
    assert "epoch 3: lr 0.001" in html
    assert "http" not in html.replace("http-equiv", "")  # self-contained: nothing fetched
    md = (tmp_path / "rep" / "report.md").read_text()
    for path in figs.values():
        name = path.rsplit("/", 1)[-1]
        assert f"]({name})" in md and (tmp_path / "rep" / name).is_file()
    assert "| setting | centre top-1 |" in md


def test_report_limit_evaluates_the_first_images(run_dir, six, tmp_path):
    r = build_report(run_dir, tmp_path / "rep", data=six, progress=False, device="cpu", limit=4)
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "its first 4 images" in r["status"] and f"first 4 images of {six}" in html
    every = build_report(run_dir, tmp_path / "rep6", data=six, progress=False, device="cpu",
                         limit=6)  # a limit of the split's size is all of it
    assert "all 6 images" in every["status"] and "first" not in every["status"]


def test_report_of_a_quick_run_limits_itself(tmp_path, six, monkeypatch):
    import alexnet.evaluation.report as report

    monkeypatch.setattr(report, "QUICK_LIMIT", 3)
    write_checkpoint(tmp_path / "run" / "best.pt", quick=True)
    r = build_report(tmp_path / "run", None, data=six, progress=False, device="cpu")
    assert "its first 3 images" in r["status"] and "--limit all" in r["status"]
    full = build_report(tmp_path / "run", tmp_path / "all", data=six, progress=False,
                        device="cpu", limit=None)
    assert "(all 6 images)" in full["status"]


def test_report_leaves_out_ten_views_for_runs_without_crops(tmp_path, eval_data):
    # a run on whole images: no data.crop, the images fitted to the model's side
    data = {**eval_data(n=6), "resize": EVAL_SIZE, "crop": None}
    write_checkpoint(tmp_path / "run" / "best.pt", data)
    r = build_report(tmp_path / "run", tmp_path / "rep", progress=False, device="cpu")
    assert "with center views. Ten-view testing left out" in r["status"]
    row = next(line for line in r["table"].splitlines() if "evaluated on" in line)
    assert row.rstrip(" |").endswith("– | –")  # no ten-view numbers


def test_report_without_data_says_so(run_dir, tmp_path):
    r = build_report(run_dir, tmp_path / "rep", progress=False, device="cpu")
    assert not r["evaluated"] and f"memory:{UNREACHABLE}" in r["reason"]
    assert "no in-memory data source" in r["reason"]
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Not evaluated on the data" in html and "--data SOURCE" in html
    assert len(_embedded_pngs(html)) == 2  # curves and kernels need no data
    assert "training log, best epoch (4)" in html
    assert "reports no number for this setting" in html  # 3 generated classes


def test_cli_report_no_eval(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r"), "--no-eval"]) == 0
    assert "Not evaluated on the data" in capsys.readouterr().out
    assert (tmp_path / "r" / "report.html").is_file()
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_paper_numbers_for_the_setting():
    rows = reference_rows("paper", 1000, "/data/ilsvrc")
    assert ("paper §6 Table 2, ILSVRC-2012 val, 1 CNN", None, (40.7, 18.2)) in rows
    assert rows[0][1] == (39.0, 18.3) and rows[0][2] == (37.5, 17.0)
    assert reference_rows("owt", 1000, "x")[0][1] == (43.478, 20.934)
    assert reference_rows("d2l", 10, "fashion-mnist")[0][1][0] == 11.5
    assert reference_rows("paper", 10, "cifar10") == []


@pytest.mark.slow
def test_report_renders_in_headless_chromium(run_dir, eval_data, tmp_path):
    chromium = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                     if shutil.which(b)), None)
    if chromium is None:
        pytest.skip("no chromium binary (Debian: apt-get install chromium)")
    r = build_report(run_dir, tmp_path / "rep", data=eval_data()["source"], progress=False,
                     device="cpu")
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--allow-file-access-from-files", "--virtual-time-budget=5000"]
    url = f"file://{r['html']}"
    # the DOM after load: every image decoded (naturalWidth > 0) is checked by a script
    probe = tmp_path / "probe.html"
    html = Path(r["html"]).read_text()
    probe.write_text(html.replace("</body>", "<script>window.onload=()=>{document.title="
                                  "'imgs:'+[...document.images].filter(i=>i.complete&&"
                                  "i.naturalWidth>0).length+'/'+document.images.length}"
                                  "</script></body>"))
    dom = subprocess.run(flags + ["--dump-dom", f"file://{probe}"], capture_output=True,
                         text=True, timeout=120)
    assert "<title>imgs:4/4</title>" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,2400", url],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000

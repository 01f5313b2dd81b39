"""`alexnet prepare`: packed round trip, skipped files, mean image and PCA against numpy,
no-op re-runs, interrupted runs, and training batches from the packed folder."""

import json

import numpy as np
import pytest
import torch

from alexnet.cli import main
from alexnet.data import DataConfig, build_loaders, load_image
from alexnet.data import prepare as prepare_module
from alexnet.data.augment import fit_square
from alexnet.data.images import decode_jpegs
from alexnet.data.packed import PackedSplit, is_packed, load_stats
from alexnet.data.prepare import prepare
from alexnet.errors import DataError
from test_data_sources import make_tree


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    src = tmp_path_factory.mktemp("tree")
    tree = make_tree(src, classes=3, per_class=5)
    dest = tmp_path_factory.mktemp("packed") / "out"
    meta = prepare(src, dest, size=32, quality=95, workers=0, val_fraction=0.2,
                   progress=False)
    return src, dest, meta, tree


def test_round_trip_counts_labels_and_skipped_file(prepared):
    src, dest, meta, tree = prepared
    assert meta["counts"] == {"train": 12, "val": 3} and meta["skipped"] == 1
    assert "broken.jpg" in (dest / "skipped.txt").read_text()
    train = PackedSplit(dest, "train")
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert PackedSplit(dest, "val").labels.tolist() == [0, 1, 2]
    # image 0 is c0/img0.jpg: the stored JPEG decodes to the fitted source image
    stored = train.decode(0).float()
    original = fit_square(load_image(src / "c0" / "img0.jpg"), 32).float()
    assert stored.shape == (3, 32, 32)
    other = fit_square(load_image(src / "c0" / "img1.jpg"), 32).float()
    assert (stored - original).abs().mean() < 12  # JPEG of random pixels at quality 95
    assert (stored - other).abs().mean() > 25
    assert json.loads((dest / "meta.json").read_text())["classes"] == ["c0", "c1", "c2"]


def test_mean_image_and_pca_equal_numpy(prepared):
    _, dest, _, _ = prepared
    train = PackedSplit(dest, "train")
    images = np.stack([decode_jpegs(train.raw(i)).numpy()
                       for i in range(len(train))]).astype(np.float64)  # (N, 3, S, S)
    stats = load_stats(dest)
    assert np.allclose(stats["mean"].numpy(), images.mean(0), atol=1e-3)
    pixels = images.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    eigval, eigvec = np.linalg.eigh(np.cov(pixels, bias=True))
    order = eigval.argsort()[::-1]
    assert np.allclose(stats["eigval"].numpy(), eigval[order], rtol=1e-4, atol=1e-7)
    for k in range(3):  # eigenvectors up to sign
        ours = stats["eigvec"][:, k].double().numpy()
        assert abs(abs(float(ours @ eigvec[:, order[k]])) - 1) < 1e-4


def test_rerun_is_a_no_op_and_other_settings_are_refused(prepared):
    src, dest, _, _ = prepared
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    again = prepare(src, dest, size=32, quality=95, workers=0, val_fraction=0.2,
                    progress=False)
    assert again["already"] is True
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == before
    with pytest.raises(DataError, match="already holds"):
        prepare(src, dest, size=48, quality=95, workers=0, progress=False)
    with pytest.raises(DataError, match="val fraction 0.2"):  # another hold-out split
        prepare(src, dest, size=32, quality=95, workers=0, val_fraction=0.3, progress=False)


def test_bad_options_and_destinations_are_data_errors(tmp_path):
    make_tree(tmp_path / "src", classes=2, per_class=2, corrupt=False)
    for kwargs, message in (({"size": 0}, "--size"), ({"val_fraction": 1.5}, "--val-fraction"),
                            ({"quality": 0}, "--quality")):
        with pytest.raises(DataError, match=message):
            prepare(tmp_path / "src", tmp_path / "out", workers=0, progress=False, **kwargs)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataError, match="cannot create the output folder"):
        prepare(tmp_path / "src", tmp_path / "file" / "out", workers=0, progress=False)


def test_a_tree_of_only_unreadable_files_fails_with_reasons_and_no_partials(tmp_path):
    for c in ("a", "b"):
        (tmp_path / "src" / c).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "src" / c / f"{i}.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(DataError, match=r"no readable training image .* e\.g\. .*0\.jpg"):
        prepare(tmp_path / "src", tmp_path / "out", size=24, workers=0, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_interrupted_run_leaves_nothing_finished(tmp_path, monkeypatch):
    make_tree(tmp_path / "src", classes=2, per_class=3, corrupt=False)
    real, calls = prepare_module._encode_chunk, []

    def failing(*args):
        calls.append(1)
        if len(calls) > 1:  # the second chunk (the val split): as if killed
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(prepare_module, "_encode_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "src", tmp_path / "out", size=24, workers=0, progress=False)
    assert not is_packed(tmp_path / "out") and not (tmp_path / "out" / "train.bin").exists()
    assert not list((tmp_path / "out").glob("*.partial"))  # cleaned up on the way out
    monkeypatch.setattr(prepare_module, "_encode_chunk", real)
    meta = prepare(tmp_path / "src", tmp_path / "out", size=24, workers=0, progress=False)
    assert not meta["already"] and is_packed(tmp_path / "out")


def test_cli_prepare_with_worker_processes(tmp_path, capsys):
    make_tree(tmp_path / "src", classes=2, per_class=4)
    assert main(["prepare", str(tmp_path / "src"), str(tmp_path / "out"), "--size", "24",
                 "--workers", "2", "--quality", "80"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable file" in out and "broken.jpg" in out
    assert main(["prepare", str(tmp_path / "src"), str(tmp_path / "out"), "--size", "24",
                 "--quality", "80"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["prepare", str(tmp_path / "nowhere"), str(tmp_path / "o2")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_build_loaders_on_a_packed_folder(prepared):
    _, dest, _, _ = prepared
    cfg = DataConfig.from_dict({"source": str(dest), "crop": 24, "resize": 32, "lighting": 0.1})
    bundle = build_loaders(cfg, batch_size=4, device="cpu", seed=0)
    assert bundle.path == "workers" and bundle.classes == ["c0", "c1", "c2"]
    x, y = next(iter(bundle.train))
    assert x.shape == (4, 3, 24, 24) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.allclose(bundle.normalization["mean"], load_stats(dest)["mean"])
    x, y = next(iter(bundle.eval_loader("ten")))
    assert x.shape == (3, 10, 3, 24, 24) and y.tolist() == [0, 1, 2]


def test_bench_data_reads_the_loader_against_decoding_alone(prepared, monkeypatch):
    """`alexnet bench data` on a prepared folder: the loader's rate, what the same cores
    decode of the same number of images with nothing else to do, and the one over the other."""
    from alexnet.data import loader_speed as bench

    _, dest, _, _ = prepared
    result = bench.bench_loader(str(dest), batch_size=4, num_batches=2, warmup=1, crop=24,
                                resize=32, workers=0)
    assert result["images"] == 8 and result["decode_threads"] == bench.usable_cores()
    assert result["decode_only_images_per_s"] > 0
    assert result["of_decode"] == pytest.approx(
        result["images_per_s"] / result["decode_only_images_per_s"], rel=0.01)

    split, decoded = PackedSplit(dest, "train"), []
    monkeypatch.setattr(split, "decode", lambda i: decoded.append(i) or decode_jpegs(
        split.raw(i)))
    assert bench.decode_rate(split, 8, threads=2) > 0
    assert sorted(decoded) == sorted([0, 1, *range(8)])  # two to start the threads, then all

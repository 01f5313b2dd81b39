"""build_loaders: layout, resumable determinism, sharding, lighting switch, variants, and
preprocess_images equal to the eval loader."""

import io

import pytest
import torch

from alexnet.data import DataConfig, build_loaders, load_image, preprocess_images
from alexnet.data.loader_speed import bench_loader
from alexnet.errors import ConfigError, DataError
from test_data_sources import make_cifar10, make_fashion_mnist, make_tree


@pytest.fixture(scope="module")
def fm_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fm")
    make_fashion_mnist(root, n_train=200, n_test=50)
    return root


def _fm(root, **kw):
    cfg = DataConfig.from_dict({"source": "fashion-mnist", "root": str(root), "resize": 64,
                                "channels": 1, **kw})
    return build_loaders(cfg, batch_size=16, device="cpu", seed=7)


def test_fashion_mnist_bundle_layout_and_checkpoint_entries(fm_root):
    b = _fm(fm_root)
    assert len(b.train) == 200 // 16 and b.num_classes == 10 and b.in_channels == 1
    assert b.classes[9] == "Ankle boot" and b.path == "memory"
    x, y = next(iter(b.train))
    assert x.shape == (16, 1, 64, 64) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.shape == (16,)
    raw = b.train.fetcher.images.float()  # (200, 1, 28, 28)
    mean, std = b.normalization["mean"], b.normalization["std"]
    assert torch.allclose(mean.flatten(), raw.mean().reshape(1), rtol=1e-4)
    assert torch.allclose(std.flatten(), raw.std(unbiased=False).reshape(1), rtol=1e-4)
    first = raw[b.train.order(0)[:16]]  # no crop, no flip: resized and normalised as is
    up = torch.nn.functional.interpolate(first, size=(64, 64), mode="bilinear")
    assert torch.allclose(x, (up - mean) / std, atol=1e-4)
    xs, ys = zip(*b.val, strict=True)
    assert sum(len(v) for v in ys) == 50 and torch.cat(ys).tolist() == [i % 10 for i in range(50)]
    buf = io.BytesIO()
    torch.save({"normalization": b.normalization, "preprocess": b.preprocess}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    assert saved["preprocess"]["resize"] == 64 and saved["normalization"]["mean"].shape == (1, 1,
                                                                                            1)


def test_eval_loader_limit_takes_the_first_images_of_the_split(fm_root):
    b = _fm(fm_root)
    xs, ys = zip(*b.eval_loader("ten", limit=21), strict=True)
    assert torch.cat(ys).tolist() == [i % 10 for i in range(21)]
    full = torch.cat([x for x, _ in b.eval_loader("ten")])
    assert torch.equal(torch.cat(xs), full[:21]) and full.shape[1] == 10


def test_batches_are_a_pure_function_of_seed_epoch_and_index(fm_root):
    a, b = _fm(fm_root), _fm(fm_root)
    full = list(a.train.iterate(2))
    resumed = list(b.train.iterate(2, start_batch=5))
    assert len(resumed) == len(full) - 5
    for (x1, y1), (x2, y2) in zip(full[5:], resumed, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other = next(iter(a.train.iterate(3)))
    assert not torch.equal(other[1], full[0][1])
    a.train.set_epoch(2)
    assert torch.equal(next(iter(a.train))[1], full[0][1])


def test_ranks_get_disjoint_training_shards_and_cover_validation(fm_root):
    cfg = DataConfig.from_dict({"source": "fashion-mnist", "root": str(fm_root), "resize": 32})
    ranks = [build_loaders(cfg, batch_size=10, device="cpu", seed=1, rank=r, world_size=2)
             for r in range(2)]
    o0, o1 = (r.train.order(4) for r in ranks)
    assert len(o0) == len(o1) == 100 and not set(o0.tolist()) & set(o1.tolist())
    assert len(ranks[0].train) == 10
    val = sorted(ranks[0].val.indices.tolist() + ranks[1].val.indices.tolist())
    assert val == list(range(50))


def test_cifar10_lighting_switch_and_original_variant(tmp_path):
    make_cifar10(tmp_path)
    base = {"source": "cifar10", "root": str(tmp_path), "resize": 40, "crop": 32,
            "lighting": 0.1}
    b = build_loaders(DataConfig.from_dict(base), batch_size=20, device="cpu", seed=0)
    assert b.in_channels == 3 and b.classes[3] == "cat"
    x_on = next(iter(b.train.iterate(0)))[0]
    b.train.lighting = False
    x_off = next(iter(b.train.iterate(0)))[0]
    diff = (x_on - x_off).flatten(2)  # per image and channel: one constant (the RGB shift)
    assert diff.abs().max() > 0 and torch.allclose(diff, diff[:, :, :1].expand_as(diff),
                                                   atol=1e-4)
    orig = build_loaders(DataConfig.from_dict({**base, "variant": "original", "chunk": 10,
                                               "lighting": 0.0}), batch_size=20,
                         device="cpu", seed=0)
    # convdata.py divides training images only: the saved (test-time) normalisation is the same
    assert torch.allclose(orig.normalization["std"], b.normalization["std"])
    x, _ = next(iter(orig.train.iterate(0)))
    assert x.shape == (20, 3, 32, 32)


def test_preprocess_images_equals_the_eval_loader(fm_root, tmp_path):
    b = _fm(fm_root)
    x_val, _ = next(iter(b.eval_loader("ten", batch_size=4)))
    raw = [img for img in b.val.fetcher.images[:4]]  # uint8 (1, 28, 28) each
    ours = preprocess_images(raw, b.normalization, b.preprocess, views="ten")
    assert ours.shape == (4, 10, 1, 64, 64) and torch.allclose(ours, x_val, atol=1e-4)
    make_tree(tmp_path / "tree", classes=2, per_class=4, corrupt=False)
    cfg = DataConfig.from_dict({"source": str(tmp_path / "tree"), "crop": 24, "resize": 28,
                                "workers": 0})
    t = build_loaders(cfg, batch_size=8, device="cpu", seed=0)
    x_val, y_val = next(iter(t.val))
    images = [load_image(p) for p in t.val.fetcher.split.paths]
    ours = preprocess_images(images, t.normalization, t.preprocess)
    assert ours.shape == x_val.shape == (2, 3, 24, 24)
    assert (ours - x_val).abs().max() < 0.51  # the loader rounds fitted images to uint8


def test_bench_loader_reports_a_rate(fm_root):
    result = bench_loader("fashion-mnist", batch_size=32, device="cpu", num_batches=3,
                          root=str(fm_root), resize=32)
    assert result["images"] == 96 and result["images_per_s"] > 0 and result["path"] == "memory"
    assert "of_decode" not in result  # no JPEGs to decode: no decode ceiling


def test_missing_tree_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        build_loaders(DataConfig.from_dict({"source": str(tmp_path / "nope")}), batch_size=2,
                      device="cpu", seed=0)


def test_an_unreadable_file_in_an_unprepared_tree_is_one_clear_error(tmp_path):
    make_tree(tmp_path / "tree", classes=2, per_class=4)  # + c0/broken.jpg
    cfg = DataConfig.from_dict({"source": str(tmp_path / "tree"), "resize": 36, "crop": 32,
                                "workers": 1, "val_fraction": 0.25, "stats_images": 2})
    bundle = build_loaders(cfg, batch_size=16, device="cpu", seed=0)
    with pytest.raises(DataError) as info:  # every image of the split in one batch
        for split in (bundle.train, bundle.val):
            list(split)
    message = str(info.value)
    assert "broken.jpg" in message and "alexnet prepare" in message
    assert "Traceback" not in message and "worker" not in message


def test_data_options_that_are_not_numbers_are_config_errors():
    with pytest.raises(ConfigError, match=r"data.resize='abc': expected null or a whole"):
        DataConfig.from_dict({"source": "fashion-mnist", "resize": "abc"})
    with pytest.raises(ConfigError, match=r"data.workers=-1: expected null or a whole number"):
        DataConfig.from_dict({"source": "fashion-mnist", "workers": -1})


def test_bench_refuses_a_dataset_smaller_than_its_warm_up(fm_root):
    with pytest.raises(DataError, match="smaller --batch-size"):
        bench_loader("fashion-mnist", batch_size=128, device="cpu", root=str(fm_root),
                     resize=32)

"""Image reading, image trees (class folders, ILSVRC layout), Fashion-MNIST / CIFAR-10 files,
DataConfig. `make_tree` is shared with the other data tests."""

import gzip
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.data import DataConfig, load_image
from alexnet.data.sources import cifar10, class_names, fashion_mnist, image_tree
from alexnet.errors import ConfigError, DataError

MODES = ["RGB", "L", "CMYK", "RGBA", "P"]  # written as JPEG / PNG below


def _write(path, mode, size, seed):
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    img = rgb if mode == "RGB" else rgb.convert(mode)
    if mode == "RGBA":
        img.putalpha(Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8)))
    ext = ".jpg" if mode in ("RGB", "L", "CMYK") else ".png"
    img.save(path.with_suffix(ext))
    return path.with_suffix(ext)


def make_tree(root, classes=3, per_class=5, corrupt=True):
    """A class-per-folder tree of JPEG/PNG/grey/CMYK/RGBA/palette images of odd sizes, plus
    one corrupt file; returns {"files": n readable, "corrupt": [path]}."""
    sizes = [(37, 53), (64, 40), (90, 90), (17, 30), (120, 61)]
    n, bad = 0, []
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            _write(root / f"c{c}" / f"img{i}", MODES[(c + i) % len(MODES)],
                   sizes[(c * 2 + i) % len(sizes)], seed=c * 100 + i)
            n += 1
    if corrupt:
        path = root / "c0" / "broken.jpg"
        path.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
        bad.append(path)
    return {"files": n, "corrupt": bad}


def test_load_image_modes_become_rgb(tmp_path):
    for i, mode in enumerate(MODES):
        path = _write(tmp_path / f"x{i}", mode, (21, 13), seed=i)
        image = load_image(path)
        assert image.dtype == torch.uint8 and image.shape == (3, 13, 21), mode
        if mode == "L":
            assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # black, fully transparent ...
    rgba[0, 0] = (10, 20, 30, 255)  # ... except one opaque pixel
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image[:, 0, 0].tolist() == [10, 20, 30]
    assert (image[:, 1:, :] == 255).all()


def test_corrupt_file_raises_data_error_naming_it(tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.jpg"):
        load_image(path)
    with pytest.raises(DataError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_class_folder_tree_holds_out_a_validation_split(tmp_path):
    make_tree(tmp_path, classes=3, per_class=10, corrupt=False)
    src = image_tree(tmp_path, val_fraction=0.2)
    assert src.classes == ["c0", "c1", "c2"]
    assert len(src.train) == 24 and len(src.val) == 6
    assert not set(src.train.paths) & set(src.val.paths)
    assert src.val.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_ilsvrc_layout_with_flat_val_and_ground_truth_file(tmp_path):
    wnids = ["n01440764", "n01443537"]
    for w in wnids:
        (tmp_path / "train" / w).mkdir(parents=True)
        for i in range(2):
            _write(tmp_path / "train" / w / f"{w}_{i}", "RGB", (20, 20), seed=i)
    (tmp_path / "val").mkdir()
    for i in range(3):
        _write(tmp_path / "val" / f"ILSVRC2012_val_{i:08d}", "RGB", (20, 20), seed=i)
    (tmp_path / "val.txt").write_text("ILSVRC2012_val_00000000.JPEG n01443537\n"
                                      "ILSVRC2012_val_00000001.JPEG 0\n"
                                      "ILSVRC2012_val_00000002.JPEG n01440764\n")
    src = image_tree(tmp_path)
    assert src.classes == ["tench", "goldfish"] and src.info["folders"] == wnids
    assert len(src.train) == 4
    assert src.val.labels.tolist() == [1, 0, 0]
    (tmp_path / "val.txt").unlink()
    with pytest.raises(DataError, match="ground-truth"):
        image_tree(tmp_path)


def test_ilsvrc_class_names_for_1000_wnids():
    from alexnet.data.sources import ilsvrc_names

    names = class_names(sorted(ilsvrc_names()))
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish"
    assert class_names([f"n{i:08d}" for i in range(3)]) == ["n00000000", "n00000001",
                                                            "n00000002"]  # not ILSVRC's
    assert class_names(["cat", "dog"]) == ["cat", "dog"]


def _idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_fashion_mnist(root, n_train=200, n_test=50):
    """Fashion-MNIST in torchvision's layout (root/FashionMNIST/raw/*.gz), random pixels."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        _idx(raw / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 2051)
        _idx(raw / f"{stem}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)


def test_fashion_mnist_from_torchvision_layout(tmp_path):
    make_fashion_mnist(tmp_path)
    src = fashion_mnist(tmp_path)
    assert src.train.images.shape == (200, 1, 28, 28) and src.train.images.dtype == torch.uint8
    assert src.val.labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert src.classes[0] == "T-shirt/top" and len(src.classes) == 10
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(b"\x00\x00\x08\x03" + bytes(8)))
    with pytest.raises(DataError, match="not an idx file"):
        fashion_mnist(tmp_path)


def make_cifar10(root, n=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in np.arange(n) % 10]}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return folder


def test_cifar10_from_torchvision_layout(tmp_path):
    folder = make_cifar10(tmp_path)
    src = cifar10(tmp_path)
    assert src.train.images.shape == (100, 3, 32, 32) and len(src.val) == 20
    first = pickle.loads((folder / "data_batch_1").read_bytes())["data"][0]
    assert torch.equal(src.train.images[0].flatten(), torch.from_numpy(first))
    assert src.classes[3] == "cat"


def test_data_config_checks_keys_and_resolves_defaults():
    with pytest.raises(ConfigError, match="valid: source"):
        DataConfig.from_dict({"source": "fashion-mnist", "colour": 1})
    with pytest.raises(ConfigError, match="variant"):
        DataConfig.from_dict({"source": "x", "variant": "weird"})
    tree = DataConfig.from_dict({"source": "/some/tree", "crop": 224}).resolved()
    assert (tree.resize, tree.crop, tree.flip, tree.mean, tree.channels) == (256, 224, True,
                                                                             "pixel", 3)
    fm = DataConfig.from_dict({"source": "fashion-mnist", "resize": 64}).resolved()
    assert (fm.resize, fm.crop, fm.flip, fm.channels, fm.mean) == (64, None, False, 1, "channel")
    assert DataConfig.from_dict({"source": "t", "crop": 64, "resize": 72}).resolved().resize == 72


def test_an_empty_class_folder_is_named_in_the_error(tmp_path):
    make_tree(tmp_path / "tree", classes=2, per_class=2, corrupt=False)
    (tmp_path / "tree" / "zz-empty").mkdir()
    with pytest.raises(DataError, match="zz-empty .*hold no image files"):
        image_tree(tmp_path / "tree")

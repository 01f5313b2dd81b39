"""Where images come from: Fashion-MNIST / CIFAR-10 in memory, image trees
(class-per-folder, ILSVRC-2012) as file lists, folders made by `alexnet prepare`, and
class names. Image files are read by `images.load_image`."""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path

import numpy as np
import torch

from alexnet.data.cifar10 import read_batch
from alexnet.data.memory import is_memory, open_memory
from alexnet.data.packed import PackedSplit, is_packed, load_stats, read_meta
from alexnet.data.splits import FileSplit, MemorySplit, Source
from alexnet.errors import DataError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".jfif"}
WNID = re.compile(r"^n\d{8}$")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
VAL_LABEL_FILES = ("LOC_val_solution.csv", "val.txt", "val_labels.txt", "val_ground_truth.txt")


# ---------------------------------------------------------------- Fashion-MNIST, CIFAR-10

def _read_idx(path: Path, magic: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}; delete it to download it again") from err
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path} is not an idx file (magic {found}, expected {magic})")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def fashion_mnist(root: str | Path) -> Source:
    """Fashion-MNIST as uint8 (N, 1, 28, 28): torchvision's layout under `root`, Debian's
    /usr/share/datasets/fashion-mnist, else downloaded by torchvision."""
    root = Path(root)
    folders = [root / "FashionMNIST" / "raw", root / "fashion-mnist", root, DEBIAN_FASHION_MNIST]
    stems = {"train": "train", "val": "t10k"}
    if any(_find_idx(folders, f"{s}-images-idx3-ubyte") is None for s in stems.values()):
        _download("FashionMNIST", root)
    splits = {}
    for split, s in stems.items():
        images = _read_idx(_find_idx(folders, f"{s}-images-idx3-ubyte"), 2051)  # (N, 28, 28)
        labels = _read_idx(_find_idx(folders, f"{s}-labels-idx1-ubyte"), 2049)  # (N,)
        splits[split] = MemorySplit(torch.from_numpy(images.copy())[:, None],
                                    torch.from_numpy(labels.astype(np.int64)))
    return Source("memory", splits["train"], splits["val"], list(FASHION_MNIST_CLASSES),
                  info={"name": "fashion-mnist"})


def _cifar_split(folder: Path, files: list[str]) -> MemorySplit:
    data, labels = [], []
    for name in files:
        batch = read_batch(folder / name)
        x, y = batch.get("data"), batch.get("labels")
        if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2
                and x.shape[1] == 3 * 32 * 32 and isinstance(y, list)
                and len(y) == len(x) and all(isinstance(v, int) and 0 <= v < 10 for v in y)):
            raise DataError(f"{folder / name} is not a CIFAR-10 batch (expected uint8 data of "
                            "shape (N, 3072) and N labels in 0..9); delete the folder to "
                            "download it again")
        data.append(x)
        labels += y
    return MemorySplit(torch.from_numpy(np.concatenate(data).reshape(-1, 3, 32, 32)),
                       torch.tensor(labels, dtype=torch.int64))


def cifar10(root: str | Path) -> Source:
    """CIFAR-10 as uint8 (N, 3, 32, 32) from torchvision's layout (root/cifar-10-batches-py),
    downloaded by torchvision when missing. The batch files are pickles: they are parsed by
    `alexnet.data.cifar10` without unpickling, so a planted file cannot run code."""
    folder = Path(root) / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if not all((folder / n).is_file() for n in names):
        _download("CIFAR10", Path(root))
    train, val = _cifar_split(folder, names[:5]), _cifar_split(folder, names[5:])
    classes = list(CIFAR10_CLASSES)
    if (folder / "batches.meta").is_file():
        names_read = read_batch(folder / "batches.meta").get("label_names")
        if isinstance(names_read, list) and len(names_read) == 10:
            classes = [str(c) for c in names_read]
    return Source("memory", train, val, classes, info={"name": "cifar10"})


def _download(name: str, root: Path) -> None:
    import torchvision.datasets as tvd  # here: torchvision takes seconds to import

    print(f"{name} not found under {root}: downloading it with torchvision ...", flush=True)
    try:
        for train in (True, False):
            getattr(tvd, name)(str(root), train=train, download=True)
    except Exception as err:  # no network, disk full, bad checksum
        raise DataError(f"{name} is not in {root} and could not be downloaded ({err}); "
                        f"download it on a machine with internet into {root} "
                        "(torchvision's layout) or set data.root") from err


# ---------------------------------------------------------------- image trees

def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
                  and p.is_file())


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


@functools.cache
def ilsvrc_names() -> dict[str, str]:
    """wnid -> name for the 1000 ILSVRC-2012 classes: the shipped sorted wnid list
    (`ilsvrc2012_wnids.txt`) paired with torchvision's names (its ImageNet weights'
    `meta["categories"]`), which are in the same order."""
    from torchvision.models import AlexNet_Weights  # here: seconds to import

    text = (Path(__file__).parent / "ilsvrc2012_wnids.txt").read_text(encoding="utf-8")
    wnids = [line for line in text.split() if WNID.match(line)]
    return dict(zip(wnids, AlexNet_Weights.IMAGENET1K_V1.meta["categories"], strict=True))


def _words_next_to(root: Path | None) -> dict[str, str]:
    """`words.txt` (Tiny-ImageNet: `wnid<TAB>names`) or `LOC_synset_mapping.txt` (Kaggle:
    `wnid names`) in or above the data folder: the first name of each wnid."""
    for folder in [root, *(root.parents if root else [])][:3] if root else []:
        for name in ("words.txt", "LOC_synset_mapping.txt"):
            path = folder / name
            if path.is_file():
                try:
                    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
                except OSError:
                    continue
                pairs = (line.replace("\t", " ").split(" ", 1) for line in lines)
                return {p[0]: p[1].split(",")[0].strip() for p in pairs
                        if len(p) == 2 and WNID.match(p[0])}
    return {}


def class_names(folders: list[str], root: str | Path | None = None) -> list[str]:
    """Human-readable names for class folders: an ILSVRC-2012 wnid gets its class name (any
    subset of the 1000), another wnid the name a words.txt / LOC_synset_mapping.txt next to
    the data gives; other folders keep their names. Two folders with one name (ILSVRC has two
    `crane`s) get their wnid added."""
    known = ilsvrc_names() if any(WNID.match(f) for f in folders) else {}
    if any(WNID.match(f) and f not in known for f in folders):
        known = {**_words_next_to(Path(root) if root else None), **known}
    names = [known.get(f, f) for f in folders]
    return [f"{n} ({f})" if names.count(n) > 1 and n != f else n
            for n, f in zip(names, folders, strict=True)]


def _class_items(folder: Path, classes: list[str]) -> tuple[list[str], list[int]]:
    paths, labels = [], []
    for index, name in enumerate(classes):
        files = _images_in(folder / name) if (folder / name).is_dir() else []
        paths += [str(p) for p in files]
        labels += [index] * len(files)
    return paths, labels


def _flat_val(folder: Path, classes: list[str], search: list[Path]) -> tuple[list[str], list[int]]:
    """A flat val folder labelled by a ground-truth file (`name label` lines with a wnid or a
    sorted-wnid index, or Kaggle's LOC_val_solution.csv)."""
    truth = next((d / n for d in search for n in VAL_LABEL_FILES if (d / n).is_file()), None)
    if truth is None:
        raise DataError(f"{folder} holds images without class folders and no ground-truth file "
                        f"({', '.join(VAL_LABEL_FILES)}) was found next to it; add one with "
                        "`<file name> <wnid or class index>` lines or sort val/ into class folders")
    index = {c: i for i, c in enumerate(classes)}
    by_stem: dict[str, int] = {}
    for line in truth.read_text().splitlines():
        parts = line.replace(",", " ").split()
        if len(parts) < 2 or parts[0] == "ImageId":
            continue
        name, label = parts[0], parts[1]
        if label in index:
            by_stem[Path(name).stem] = index[label]
        elif label.isdigit() and int(label) < len(classes):
            by_stem[Path(name).stem] = int(label)
        else:
            raise DataError(f"{truth}: label {label!r} of {name} is neither a class folder "
                            f"name nor a class index below {len(classes)}")
    paths, labels = [], []
    for p in _images_in(folder):
        if p.stem in by_stem:
            paths.append(str(p))
            labels.append(by_stem[p.stem])
    if not paths:
        raise DataError(f"no image in {folder} is named in {truth}")
    return paths, labels


def _hold_out(paths: list[str], labels: list[int], fraction: float
              ) -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]]]:
    """The last `fraction` of each class's sorted files (at least one) become validation."""
    train: tuple[list[str], list[int]] = ([], [])
    val: tuple[list[str], list[int]] = ([], [])
    for c in sorted(set(labels)):
        files = [p for p, l in zip(paths, labels, strict=True) if l == c]
        n_val = max(1, round(len(files) * fraction)) if fraction > 0 and len(files) > 1 else 0
        for i, p in enumerate(files):
            part = val if i >= len(files) - n_val else train
            part[0].append(p)
            part[1].append(c)
    return train, val


def image_tree(path: str | Path, val_fraction: float = 0.1) -> Source:
    """A class-per-folder tree (`root/<class>/*`, or `root/train/<class>/*` with `root/val/`
    in class folders or flat with a ground-truth file, as ILSVRC-2012)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data source {path} is not a folder; use fashion-mnist, cifar10, an "
                        "image folder (one sub-folder per class) or a folder made by "
                        "`alexnet prepare`")
    base = root / "train" if (root / "train").is_dir() else root
    folders = _class_dirs(base)
    if not folders:
        raise DataError(f"{base} has no class sub-folders; expected <class>/<image> files")
    if len(folders) < 2:  # one class: every prediction right, the error meaningless
        raise DataError(f"{base} has one class folder ({folders[0]}); a classifier needs at "
                        "least two: add a folder per class")
    paths, labels = _class_items(base, folders)
    if not paths:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {base}")
    empty = [f for i, f in enumerate(folders) if i not in set(labels)]
    if empty:  # each folder is one of the model's classes: an empty one could never be learnt
        raise DataError(f"class folder(s) {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}"
                        f" under {base} hold no image files; add images or remove the folder(s)")
    val_dir = next((root / n for n in ("val", "validation") if (root / n).is_dir()), None)
    if base is root or val_dir is None:
        (paths, labels), (vpaths, vlabels) = _hold_out(paths, labels, val_fraction)
        held = True
    else:
        if _class_dirs(val_dir):
            vpaths, vlabels = _class_items(val_dir, folders)
        else:
            vpaths, vlabels = _flat_val(val_dir, folders, [val_dir, root])
        held = False
    return Source(
        "files", FileSplit(paths, torch.tensor(labels, dtype=torch.int64)),
        FileSplit(vpaths, torch.tensor(vlabels, dtype=torch.int64)), class_names(folders, root),
        info={"name": str(root), "folders": folders, "val_held_out": held})


def open_source(source: str, root: str | Path, val_fraction: float = 0.1) -> Source:
    """fashion-mnist | cifar10 | memory:<name> | a prepared folder | an image tree."""
    if is_memory(source):  # tensors registered by alexnet.data.memory
        return open_memory(source)
    if source == "fashion-mnist":
        return fashion_mnist(root)
    if source == "cifar10":
        return cifar10(root)
    if is_packed(source):
        return open_packed(source)
    return image_tree(source, val_fraction)


def open_packed(folder: str | Path) -> Source:
    """A folder made by `alexnet prepare` (`packed.py`) as a `Source` (kind "packed")."""
    meta = read_meta(folder)
    n = len(meta["classes"])
    return Source("packed", PackedSplit(folder, "train", n), PackedSplit(folder, "val", n),
                  list(meta["classes"]), stats=load_stats(folder, meta["size"]),
                  info={"name": str(folder), "size": meta["size"], "folders": meta["folders"]})

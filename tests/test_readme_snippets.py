"""Every ```python block of README.md runs, in order and in one namespace, in a folder holding
what the blocks name: `runs/paper` (a tiny 64-px run folder on registered data), `photo.jpg`,
`photos/` (an image folder with the run's classes), `alexnet` (this clone, for torch.hub) and
torchvision's weights (random ones planted in the torch hub cache: nothing is downloaded)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from PIL import Image

from alexnet.weights.torchvision_weights import torchvision_weights
from conftest import colour_class_tree, eval_images, sensitive, write_checkpoint

REPO = Path(__file__).resolve().parents[1]


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_block_finder_finds_fenced_python_only():
    text = "intro\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = 2\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = 2\n"]


@pytest.fixture
def workspace(tmp_path, monkeypatch, eval_data):
    import torchvision

    ckpt = write_checkpoint(tmp_path / "runs" / "paper" / "best.pt", eval_data(n=12))
    assert ckpt.is_file()
    images, _ = eval_images(1)
    Image.fromarray(images[0].permute(1, 2, 0).numpy()).save(tmp_path / "photo.jpg")
    colour_class_tree(tmp_path / "photos")  # class0..class2, as the run's classes
    (tmp_path / "alexnet").symlink_to(REPO, target_is_directory=True)
    cache = tmp_path / "torch-home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(sensitive(torchvision.models.alexnet()).state_dict(),
               cache / torchvision_weights().url.rsplit("/", 1)[1])

    def no_download(url, *args, **kwargs):
        raise URLError(f"README snippets must not download ({url})")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("doc", ["README.md", "docs/PYTHON.md"])
def test_every_python_block_of_the_readme_runs(workspace, capsys, doc):
    blocks = python_blocks((REPO / doc).read_text(encoding="utf-8"))
    assert blocks
    namespace: dict = {"__name__": "readme"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{doc} python block {i + 1}", "exec"), namespace)
        except Exception as err:
            pytest.fail(f"{doc} python block {i + 1} failed: {type(err).__name__}: {err}"
                        f"\n{block}")
    out = capsys.readouterr().out
    assert "class" in out and "top-1" in out  # predict's and evaluate's lines were printed
    assert (workspace / "alexnet-hf" / "config.json").is_file()

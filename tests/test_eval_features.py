"""§6.1 features (4096-d; other layers on request), chunked nearest neighbours, `alexnet
features` / `neighbors`."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from alexnet.cli import main
from alexnet.errors import ConfigError, DataError
from alexnet.evaluation.feature_retrieval import find_neighbors, nearest_neighbors
from alexnet.evaluation.features import (
    extract_features,
    load_features,
    make_features,
    save_features,
)
from alexnet.models import create_model, list_models
from alexnet.models.base import EMBED_LAYERS
from conftest import EVAL_SIZE as SIZE
from conftest import eval_images, sensitive, write_checkpoint


def test_features_are_4096_d_last_hidden_layer():
    model = create_model("paper", num_classes=3, image_size=SIZE).eval()
    x = torch.randn(5, 3, SIZE, SIZE)
    loader = [(x[:3], torch.zeros(3, dtype=torch.long)), (x[3:], torch.ones(2, dtype=torch.long))]
    feats, targets = extract_features(model, loader, progress=False, dtype=torch.float32)
    assert feats.shape == (5, 4096) and targets.tolist() == [0, 0, 0, 1, 1]
    with torch.no_grad():
        assert torch.allclose(feats, model.embed(x), atol=1e-5)
    assert (feats >= 0).all()  # after fc7's ReLU


@pytest.mark.parametrize("name", ["paper", "owt"])
def test_embed_layers_have_their_sizes_and_fc7_is_the_old_embed(name):
    """conv5 (after ReLU5, before pool5), pool5, fc6/fc7 (after their ReLU) at 224."""
    model = sensitive(create_model(name, num_classes=10))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        dims = {layer: model.embed(x, layer).shape for layer in EMBED_LAYERS}
        assert dims == {"conv5": (2, 256 * 13 * 13), "pool5": (2, 256 * 6 * 6),
                        "fc6": (2, 4096), "fc7": (2, 4096)}
        pool5 = torch.flatten(model.avgpool(model.features(x)), 1)
        old = model.classifier[:{"paper": 5, "owt": 6}[name]](pool5)  # the former embed_depth
        assert torch.equal(model.embed(x), old) and torch.equal(model.embed(x, "fc7"), old)
        assert torch.equal(model.embed(x, "pool5"), pool5)
        conv5 = model.embed(x, "conv5").view(2, 256, 13, 13)
        assert (conv5 >= 0).all() and torch.equal(
            torch.flatten(model.avgpool(F.max_pool2d(conv5, 3, 2)), 1), pool5)
        fc6 = model.embed(x, "fc6")
        fc6_linear = next(m for m in model.classifier if isinstance(m, torch.nn.Linear))
        assert (fc6 >= 0).all() and torch.equal(fc6, torch.relu(fc6_linear(pool5)))
    with pytest.raises(ConfigError, match="unknown layer 'fc8'"):
        model.embed(x, "fc8")


def test_every_model_has_every_layer():
    for name in [m for m in list_models() if m != "cifar4"]:  # cifar4 has no fc6/fc7
        model = create_model(name, num_classes=10, image_size=96).eval()
        x = torch.randn(1, model.in_channels, 96, 96)
        with torch.no_grad():
            sizes = [model.embed(x, layer).shape[1] for layer in EMBED_LAYERS]
        assert sizes[2:] == [4096, 4096] and min(sizes) > 0, name


def test_the_cli_offers_the_models_layers(capsys):
    with pytest.raises(SystemExit):
        main(["features", "m.pt", "--out", "f.pt", "--layer", "fc8"])
    assert f"choose from {', '.join(repr(x) for x in EMBED_LAYERS)}" in capsys.readouterr().err


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_nearest_neighbors_chunked_equals_brute_force(chunk):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(50, 32, generator=g)
    queries = torch.cat([base[[3, 17]], torch.randn(2, 32, generator=g)])
    dist, idx = nearest_neighbors(queries, base, k=6, chunk_size=chunk)
    full = torch.cdist(queries, base, compute_mode="donot_use_mm_for_euclid_dist")  # (Q, N)
    want_d, want_i = full.topk(6, dim=1, largest=False)
    assert torch.equal(idx, want_i)
    assert torch.allclose(dist, want_d, atol=1e-5)
    assert idx[0, 0] == 3 and idx[1, 0] == 17  # a query in the set finds itself first
    assert dist[0, 0] == pytest.approx(0.0, abs=1e-6)


def test_nearest_neighbors_far_from_the_origin_still_find_themselves():
    """Vectors far from 0 relative to their spacing: the fast expansion |q|² − 2q·b + |b|²
    cancels catastrophically in float32 unless the vectors are shifted first."""
    g = torch.Generator().manual_seed(1)
    base = 300.0 + 0.05 * torch.randn(400, 512, generator=g)
    queries = base[[7, 123, 399]]
    dist, idx = nearest_neighbors(queries, base, k=3, chunk_size=64)
    assert idx[:, 0].tolist() == [7, 123, 399] and dist[:, 0].abs().max() < 1e-4
    full = torch.cdist(queries.double(), base.double())
    assert torch.equal(idx, full.topk(3, dim=1, largest=False).indices)


def test_nearest_neighbors_edge_cases():
    base = torch.randn(4, 8)
    d, i = nearest_neighbors(base[:1], base, k=10)  # k larger than the set
    assert i.shape == (1, 4) and i[0, 0] == 0 and (d[0, 1:] >= d[0, :-1]).all()
    with pytest.raises(Exception, match="dimensions"):
        nearest_neighbors(torch.randn(1, 5), base)


def test_features_file_round_trip_and_errors(tmp_path):
    f = torch.randn(6, 4096).half()
    save_features(tmp_path / "f.pt", f, torch.arange(6), {"split": "val"})
    state = load_features(tmp_path / "f.pt")
    assert torch.equal(state["features"], f) and state["meta"]["split"] == "val"
    with pytest.raises(DataError, match="does not exist"):
        load_features(tmp_path / "missing.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "f.pt").read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated"):
        load_features(tmp_path / "cut.pt")


def test_features_then_neighbors_finds_the_query_itself(tmp_path, eval_data, capsys):
    data = eval_data(n=10)
    images, labels = eval_images(10)
    ckpt = write_checkpoint(tmp_path / "m.pt", data)
    info = make_features(str(ckpt), tmp_path / "feats.pt", split="val", progress=False)
    assert info["images"] == 10 and info["dim"] == 4096
    # query = stored image 6, written losslessly as a PNG
    query = tmp_path / "q.png"
    Image.fromarray(images[6].permute(1, 2, 0).numpy()).save(query)
    r = find_neighbors(tmp_path / "feats.pt", [str(query)], k=4, figure=tmp_path / "nn.png",
                       chunk_size=3, progress=False)
    first = r["queries"][0]["neighbors"]
    assert len(first) == 4 and first[0]["index"] == 6
    assert first[0]["distance"] < 1e-2 * max(first[1]["distance"], 1e-6)
    assert first[0]["label"] == f"class{int(labels[6])}"
    assert (tmp_path / "nn.png").stat().st_size > 1000

    # the CLI, on the same registered source
    assert main(["features", str(ckpt), "--data", data["source"], "--split", "val",
                 "--out", str(tmp_path / "f2.pt")]) == 0
    assert "10 feature vectors of 4096" in capsys.readouterr().out
    assert main(["neighbors", str(tmp_path / "f2.pt"), str(query), "--topk", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["queries"][0]["neighbors"][0]["index"] == 6
    other = write_checkpoint(tmp_path / "other.pt", data, seed=1)  # same model, other weights
    assert main(["neighbors", str(tmp_path / "f2.pt"), str(query), "--checkpoint",
                 str(other)]) == 2
    assert "whose weights differ" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: "-k: expected a number >= 1"
        main(["neighbors", str(tmp_path / "f2.pt"), str(query), "--topk", "0"])
    assert "expected a number >= 1" in capsys.readouterr().err

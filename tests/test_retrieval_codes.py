"""§6.1 measured and built: precision@k of nearest-neighbour retrieval (features vs pixels),
binary codes from an auto-encoder, packed bits and Hamming search (evaluation/codes.py,
evaluation/feature_retrieval.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.errors import AlexNetError, DataError
from alexnet.evaluation.checkpoints import data_bundle
from alexnet.evaluation.codes import (
    encoder_state,
    hamming_distances,
    hamming_neighbors,
    load_encoder,
    pack_bits,
    popcount64,
    train_codes,
    unpack_bits,
)
from alexnet.evaluation.feature_retrieval import (
    euclidean_precision,
    file_code_report,
    find_neighbors,
    hamming_precision,
    label_precision,
    retrieval_precision,
    split_vectors,
    spread_limit,
)
from alexnet.evaluation.features import (
    feature_batches,
    load_features,
    make_features,
    save_features,
    stored_codes,
)
from alexnet.models import create_model
from conftest import eval_images, hand_views, sensitive, write_checkpoint

# ---------------------------------------------------------------- packed bits, popcount


@pytest.mark.parametrize("bits", [64, 128, 256, 13, 1])
def test_pack_unpack_round_trip_in_numpys_bit_order(bits):
    b = torch.rand(9, bits, generator=torch.Generator().manual_seed(bits)) > 0.5
    packed = pack_bits(b)
    assert packed.dtype == torch.uint8 and packed.shape == (9, -(-bits // 8))
    assert torch.equal(unpack_bits(packed, bits), b)
    assert np.array_equal(packed.numpy(), np.packbits(b.numpy(), axis=1))


def test_popcount64_counts_the_bits_of_every_word_negative_ones_too():
    g = torch.Generator().manual_seed(0)
    words = torch.cat([torch.randint(-2**63, 2**63 - 1, (500,), generator=g),
                       torch.tensor([0, -1, 1, -2**63, 2**63 - 1])])
    want = [bin(w & (2**64 - 1)).count("1") for w in words.tolist()]
    assert popcount64(words).tolist() == want


def _brute_force(queries: torch.Tensor, base: torch.Tensor, bits: int, k: int):
    """Distances from the unpacked bits, sorted by (distance, index)."""
    d = (unpack_bits(queries, bits)[:, None] != unpack_bits(base, bits)[None]).sum(2)  # (Q, N)
    order = d.argsort(dim=1, stable=True)[:, :k]  # stable: ties keep the lower index first
    return d.gather(1, order), order


@pytest.mark.parametrize("method", ["matmul", "popcount", "popcount in torch"])
@pytest.mark.parametrize("bits,chunk", [(8, 7), (8, 1000), (64, 16), (72, 5), (256, 33)])
def test_hamming_search_equals_brute_force_with_ties_to_the_lower_index(method, bits, chunk,
                                                                         monkeypatch):
    if method == "popcount in torch":  # numpy < 2 (no bitwise_count), or CUDA tensors
        monkeypatch.setattr("alexnet.evaluation.codes.NUMPY_POPCOUNT", False)
        method = "popcount"
    g = torch.Generator().manual_seed(bits + chunk)
    base = pack_bits(torch.rand(120, bits, generator=g) > 0.5)  # 8 bits: many ties
    queries = torch.cat([base[[5, 77]], pack_bits(torch.rand(6, bits, generator=g) > 0.5)])
    dist, idx = hamming_neighbors(queries, base, k=10, chunk_size=chunk, method=method,
                                  block=50)
    want_d, want_i = _brute_force(queries, base, bits, 10)
    assert torch.equal(dist, want_d) and torch.equal(idx, want_i)
    # a stored code finds itself, or an equal code of a lower index (8 bits repeat)
    assert dist[:2, 0].tolist() == [0, 0] and idx[0, 0] <= 5 and idx[1, 0] <= 77
    assert torch.equal(hamming_distances(queries, base, method),
                       (unpack_bits(queries, bits)[:, None] != unpack_bits(base, bits)[None])
                       .sum(2))


def test_hamming_search_edge_cases():
    base = pack_bits(torch.tensor([[1, 0] * 4, [0, 1] * 4, [1, 1] * 4]).bool())
    d, i = hamming_neighbors(base[:1], base, k=10)  # k larger than the set
    assert i.tolist() == [[0, 2, 1]] and d.tolist() == [[0, 4, 8]]
    with pytest.raises(AlexNetError, match="bytes"):
        hamming_neighbors(torch.zeros(1, 2, dtype=torch.uint8), base)
    with pytest.raises(DataError, match="empty"):
        hamming_neighbors(base, base[:0])
    with pytest.raises(AlexNetError, match="method"):
        hamming_neighbors(base, base, method="lut")


# ---------------------------------------------------------------- the auto-encoder


def _clusters(n_per: int = 40, classes: int = 4, dim: int = 256, seed: int = 0):
    """ReLU'd vectors around `classes` random centres (fc7-like: non-negative)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(n_per)
    return torch.relu(centres[y] + torch.randn(len(y), dim, generator=g)), y


@pytest.mark.parametrize("bits", [64, 128, 256])
def test_the_auto_encoder_trains_codes_of_the_requested_bits(bits):
    x, y = _clusters()
    encoder, record = train_codes(x, bits, epochs=30, batch_size=32, seed=1)
    codes = encoder.codes(x)
    assert codes.dtype == torch.uint8 and codes.shape == (len(x), bits // 8)
    assert record["bits"] == bits and 0 < record["ones"] < 1
    assert record["error_from_bits"] < 0.5  # the bits keep most of the vectors' variation
    assert hamming_precision(codes, y, codes, y, k=5) > 0.9  # clusters stay apart
    # the stored state (plain tensors) rebuilds an encoder giving the same codes
    assert torch.equal(load_encoder(encoder_state(encoder, record)).codes(x), codes)


@pytest.mark.parametrize("binarize", ["straight-through", "noise"])
def test_the_auto_encoder_is_seeded(binarize):
    x, _ = _clusters(n_per=8)
    codes = [train_codes(x, 64, binarize=binarize, epochs=2, seed=s)[0].codes(x)
             for s in (3, 3, 4)]
    assert torch.equal(codes[0], codes[1]) and not torch.equal(codes[0], codes[2])


def test_train_codes_refuses_nonsense():
    with pytest.raises(AlexNetError, match="at least 1 bit"):
        train_codes(torch.randn(10, 8), 0)
    with pytest.raises(DataError, match="at least 2"):
        train_codes(torch.randn(1, 8), 64)
    with pytest.raises(AlexNetError, match="binarize"):
        train_codes(torch.randn(10, 8), 8, binarize="sign")
    with pytest.raises(DataError, match="expected format"):
        load_encoder({"format": "something else"})


# ---------------------------------------------------------------- precision@k


def test_precision_at_k_on_a_hand_made_set():
    """Points on a line: class 0 at 0, 1, 2; class 1 at 10, 11, 12. Query 0.4 (class 0) and
    10.6 (class 1) find their own class 3 times of 3; 5.9 (class 1) finds 2 (3.9 away), 10
    (4.1) and 1 (4.9): one of 3. Precision@3 = 7/9."""
    base = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    queries, q_labels = torch.tensor([[0.4], [10.6], [5.9]]), torch.tensor([0, 1, 1])
    assert euclidean_precision(queries, q_labels, base, labels, k=3) == pytest.approx(7 / 9)
    assert euclidean_precision(queries, q_labels, base, labels, k=1) == pytest.approx(2 / 3)
    assert label_precision(torch.tensor([[0, 0], [1, 0]]), torch.tensor([0, 1])) == 0.75


def test_hamming_precision_on_a_hand_made_set():
    """8-bit codes: class 0 is 0x00 and 0x01, class 1 is 0xFF and 0xFE. 0x03's two nearest are
    0x01 (1 bit) and 0x00 (2), 0xFC's 0xFE (1) and 0xFF (2). 0x0F is 3 bits from 0x01, then
    4 from both 0x00 and 0xFF: its second neighbour is a tie, settled by the seeded draw."""
    base = torch.tensor([[0x00], [0x01], [0xFF], [0xFE]], dtype=torch.uint8)
    labels = torch.tensor([0, 0, 1, 1])
    queries = torch.tensor([[0x03], [0xFC]], dtype=torch.uint8)  # 2 bits from 0x00 / 0xFF
    assert hamming_precision(queries, torch.tensor([0, 1]), base, labels, k=2) == 1.0
    assert hamming_precision(queries, torch.tensor([1, 0]), base, labels, k=2) == 0.0
    tie = torch.tensor([[0x0F]], dtype=torch.uint8)
    p = hamming_precision(tie, torch.tensor([0]), base, labels, k=2)
    assert p in (0.5, 1.0)  # 0x01 (3 bits) for sure, then 0x00 or 0xFF (4 bits) by the draw


def test_spread_limit_takes_queries_from_every_part_of_the_split():
    class Loader:
        indices = torch.arange(100)

    assert spread_limit(Loader(), 5).indices.tolist() == [0, 25, 50, 74, 99]
    assert len(spread_limit(Loader(), None).indices) == 100


def test_pixel_vectors_are_the_views_the_network_sees(eval_data):
    data = eval_data(n=9)
    images, labels = eval_images(9)
    bundle = data_bundle(data, batch_size=4, device="cpu")
    model = sensitive(create_model("paper", num_classes=3, image_size=64))
    feats, pixels, y = split_vectors(model, feature_batches(bundle, "val"), "fc7",
                                     device=torch.device("cpu"))
    want = hand_views(images, bundle.normalization).flatten(1)  # (9, 3·64·64)
    assert torch.allclose(pixels.float(), want, atol=2e-2 * want.abs().max())  # float16
    assert torch.equal(y, labels) and feats.shape == (9, 4096)
    with torch.no_grad():
        assert torch.allclose(feats.float(), model.embed(want.view(9, 3, 64, 64)),
                              rtol=1e-2, atol=1e-2)


def test_retrieval_precision_of_a_checkpoint_on_its_data(tmp_path, eval_data, capsys):
    data = eval_data(n=24)  # classes by brightness: raw pixels find them
    ckpt = write_checkpoint(tmp_path / "m.pt", data)
    r = retrieval_precision(str(ckpt), k=3, limit=12, bits=(64,))
    assert r["queries"] == 12 and r["stored"] == 24 and r["dims"]["pixels"] == 3 * 64 * 64
    assert r["pixels"] == 1.0 and 0 <= r["features"] <= 1
    assert r["chance"] == pytest.approx(1 / 3)
    codes = r["codes"]
    assert codes["euclidean"]["precision"] == r["features"]
    assert set(codes["codes"]) == {64} and codes["codes"][64]["bytes_per_image"] == 8
    assert codes["codes"][64]["queries_per_s"] > 0
    assert main(["retrieval", str(ckpt), "--topk", "3", "--stored-limit", "12", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stored"] == 12 and out["pixels"] == 1.0 and "codes" not in out
    # Fig. 4 for a few queries, by the features and by the pixels
    assert main(["retrieval", str(ckpt), "--topk", "3", "--out", str(tmp_path / "f4.png")]) == 0
    printed = capsys.readouterr().out
    for name in ("f4.png", "f4-pixels.png"):
        assert (tmp_path / name).stat().st_size > 1000 and name in printed


# ---------------------------------------------------------------- codes in features files


def test_features_file_with_codes_round_trips_and_old_files_still_load(tmp_path):
    x, y = _clusters(n_per=10, dim=64)
    encoder, record = train_codes(x, 64, epochs=2)
    codes = {"64": {"packed": encoder.codes(x), "encoder": encoder_state(encoder, record)}}
    save_features(tmp_path / "c.pt", x.half(), y, {"split": "train"}, codes)
    state = load_features(tmp_path / "c.pt")
    bits, entry = stored_codes(state)
    assert bits == 64 and torch.equal(entry["packed"], codes["64"]["packed"])
    assert torch.equal(load_encoder(entry["encoder"]).codes(x), codes["64"]["packed"])
    # a file as `alexnet features` wrote it before codes existed
    with open(tmp_path / "old.pt", "wb") as f:
        torch.save({"format": "alexnet-features/1", "features": x.half(), "targets": y,
                    "meta": {"split": "train"}}, f)
    old = load_features(tmp_path / "old.pt")
    assert "codes" not in old and torch.equal(old["features"], x.half())
    with pytest.raises(DataError, match="--codes 64"):
        stored_codes(old)
    with pytest.raises(DataError, match="64-bit codes, not 128-bit"):
        stored_codes(state, 128)


def test_features_with_codes_then_hamming_neighbors(tmp_path, eval_data, capsys):
    data = eval_data(n=10)
    images, _ = eval_images(10)
    ckpt = write_checkpoint(tmp_path / "m.pt", data)
    assert main(["features", str(ckpt), "--split", "val", "--out", str(tmp_path / "f.pt"),
                 "--codes", "64", "128"]) == 0
    out = capsys.readouterr().out
    assert "64-bit codes" in out and "128-bit codes" in out
    assert set(load_features(tmp_path / "f.pt")["codes"]) == {"64", "128"}
    query = tmp_path / "q.png"
    Image.fromarray(images[6].permute(1, 2, 0).numpy()).save(query)  # lossless: stored image 6
    r = find_neighbors(tmp_path / "f.pt", [str(query)], k=4, hamming=True, progress=False)
    first = r["queries"][0]["neighbors"]
    assert r["distance"] == "hamming (128 bits)" and first[0]["distance"] == 0
    assert 6 in [n["index"] for n in first if n["distance"] == 0]
    assert main(["neighbors", str(tmp_path / "f.pt"), str(query), "--hamming", "64",
                 "--topk", "3"]) == 0
    assert "hamming (64 bits) distance" in capsys.readouterr().out
    # the Euclidean search of the same file is unchanged
    assert find_neighbors(tmp_path / "f.pt", [str(query)], k=1, progress=False)[
        "queries"][0]["neighbors"][0]["index"] == 6


def test_file_code_report_compares_hamming_and_euclidean(tmp_path, eval_data):
    data = eval_data(n=12)
    ckpt = write_checkpoint(tmp_path / "m.pt", data)
    make_features(str(ckpt), tmp_path / "train.pt", split="train", codes=(64,), progress=False)
    make_features(str(ckpt), tmp_path / "val.pt", split="val", progress=False)
    r = file_code_report(tmp_path / "train.pt", tmp_path / "val.pt", k=3, repeats=1)
    assert r["stored"] == r["queries"] == 12 and set(r["codes"]) == {64}
    assert r["euclidean"]["bytes_per_image"] == 4096 * 2 and r["codes"][64]["bytes_per_image"] == 8
    for entry in (r["euclidean"], r["codes"][64]):
        assert 0 <= entry["precision"] <= 1 and entry["queries_per_s"] > 0
    with pytest.raises(DataError, match="no binary codes"):
        file_code_report(tmp_path / "val.pt", tmp_path / "val.pt")

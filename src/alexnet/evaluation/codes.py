"""§6.1's proposal, built: "Computing similarity by using Euclidean distance between two
4096-dimensional, real-valued vectors is inefficient, but it could be made efficient by
training an auto-encoder to compress these vectors to short binary codes."

- `train_codes(features, bits)`: an auto-encoder whose code layer is `bits` logistic units,
  made binary in one of two ways (`binarize`):
  - `straight-through` (default): the decoder sees the rounded units, 0 or 1, and the gradient
    passes the rounding as if it were not there (the straight-through estimator: Hinton's
    2012 lectures; Bengio, Léonard & Courville 2013, "Estimating or propagating gradients
    through stochastic neurons"), so training minimises the error of the codes as they are
    used;
  - `noise`: semantic hashing's trick (Salakhutdinov & Hinton 2009; Hinton's lecture slide
    "Finding binary codes for documents"), which Krizhevsky & Hinton 2011, "Using very deep
    autoencoders for content-based image retrieval" (the paper's [14]), applied to images:
    Gaussian noise on the code units' inputs, a fixed noise vector per training case, forces
    their activities to become bimodal, and the codes are the rounded activities. In a short
    training the units are not yet saturated, and rounding them loses much: on fc7 of
    tiny-imagenet-10 (5,000 vectors, 20 epochs) the squared reconstruction error from the bits
    was 0.37 (64 bits) and 0.91 (256) of the vectors' variance against 0.03 and 0.02
    straight-through, and precision@6 0.368/0.379 against 0.377/0.388 (Euclidean: 0.390).
  Our choices, so that it trains on a CPU within a minute: the outer layers are the features'
  top principal components (PCA is the optimal linear auto-encoder, solved in closed form; 128
  of them keep 99.8% of the variance of fc7 on tiny-imagenet-10), then one hidden layer of 256
  ReLUs on each side of the code instead of [14]'s deep stack, no RBM pre-training, Adam.
- `pack_bits` / `unpack_bits`: codes as bytes (64 bits: 8 bytes per image, against 8 KB for a
  4096-d float16 vector).
- `hamming_neighbors`: the k stored codes nearest to each query code in Hamming distance,
  popcount of XOR over 64-bit words (or a ±1 matrix product), chunked like the Euclidean
  search.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alexnet.errors import AlexNetError, DataError

FORMAT = "alexnet-codes/1"
PCA_DIMS = 128  # principal components the auto-encoder sees and reconstructs (our choice)
HIDDEN = 256  # units of the encoder's and the decoder's hidden layer (our choice)
NOISE_STD = 4.0  # binarize="noise": std of the noise on the code units' inputs (our choice)
BINARIZE = ("straight-through", "noise")
MAX_VECTORS = 100_000  # training vectors at most: an evenly spaced subset of a larger set


class CodeEncoder(nn.Module):
    """Features (N, D) -> code logits (N, bits): the top principal components of x − mean,
    divided by their RMS norm, then Linear, ReLU, Linear. `codes(x)`: the packed bits,
    logits > 0 (a logistic unit's activity rounded)."""

    def __init__(self, dim: int, bits: int, hidden: int = HIDDEN, pca_dims: int = PCA_DIMS
                 ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))  # (D,): the training features' mean
        self.register_buffer("projection", torch.eye(dim, pca_dims))  # (D, P): components
        self.register_buffer("scale", torch.ones(()))  # RMS norm of the projected vectors
        self.net = nn.Sequential(nn.Linear(pca_dims, hidden), nn.ReLU(),
                                 nn.Linear(hidden, bits))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, P): the principal components, scaled to unit RMS norm."""
        return (x.float() - self.mean) @ self.projection / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(x))  # (N, bits) logits

    @torch.no_grad()
    def codes(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Packed codes (N, ceil(bits/8)) uint8 of features (N, D), in batches."""
        return torch.cat([pack_bits(self(x[i:i + batch_size]) > 0)
                          for i in range(0, len(x), batch_size)])


def fit_pca(encoder: CodeEncoder, x: torch.Tensor, seed: int) -> None:
    """Set the encoder's mean, principal components and scale from training vectors (N, D)."""
    encoder.mean.copy_(x.mean(0))
    with torch.random.fork_rng(devices=[]):  # the CPU generator only
        torch.manual_seed(seed)  # pca_lowrank draws a random start
        _, _, v = torch.pca_lowrank(x - encoder.mean, q=encoder.projection.shape[1],
                                    center=False, niter=4)  # v: (D, P)
    encoder.projection.copy_(v)
    p = (x - encoder.mean) @ v  # (N, P)
    encoder.scale.copy_((p * p).sum(1).mean().sqrt().clamp_min(1e-12))


def binary_code(logits: torch.Tensor, noise: torch.Tensor, binarize: str) -> torch.Tensor:
    """The code units the decoder sees in training, (b, bits): rounded with a straight-through
    gradient, or logistic with noise on their inputs (see the module's docstring)."""
    if binarize == "noise":
        return torch.sigmoid(logits + noise)
    p = torch.sigmoid(logits)
    return p + ((p > 0.5).float() - p).detach()  # forward: 0/1; backward: d sigmoid


def train_codes(features: torch.Tensor, bits: int, *, binarize: str = "straight-through",
                hidden: int = HIDDEN, pca_dims: int = PCA_DIMS, epochs: int = 20,
                batch_size: int = 128, lr: float = 1e-3, noise_std: float = NOISE_STD,
                seed: int = 0, max_vectors: int = MAX_VECTORS
                ) -> tuple[CodeEncoder, dict[str, Any]]:
    """Train the auto-encoder on `features` (N, D) (at most `max_vectors` of them, evenly
    spaced); returns the encoder and a record of the training: `loss` (the last batch's),
    `error_from_bits` (the squared reconstruction error from the rounded
    codes, relative to the vectors' mean squared norm: 0 is perfect, 1 is no better than the
    mean), `saturated` (the fraction of code units below 0.1 or above 0.9 without the noise)
    and `ones` (the fraction of bits that are 1)."""
    if bits < 1:
        raise AlexNetError(f"codes need at least 1 bit, got {bits}")
    if len(features) < 2:
        raise DataError("training binary codes needs at least 2 feature vectors")
    if binarize not in BINARIZE:
        raise AlexNetError(f"binarize must be one of {', '.join(BINARIZE)}, got {binarize!r}")
    step = -(-len(features) // max_vectors)
    x = features[::step].float()  # (N, D)
    pca_dims = min(pca_dims, *x.shape)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the CPU generator only
        torch.manual_seed(seed)
        encoder = CodeEncoder(x.shape[1], bits, hidden, pca_dims)
        decoder = nn.Sequential(nn.Linear(bits, hidden), nn.ReLU(), nn.Linear(hidden, pca_dims))
    fit_pca(encoder, x, seed)
    target = encoder.project(x).detach()  # (N, P): what the decoder reconstructs
    # binarize="noise": one fixed noise vector per training case (semantic hashing)
    noise = torch.randn(len(x), bits, generator=g) * noise_std  # (N, bits)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=lr)
    start, loss = time.perf_counter(), torch.tensor(float("nan"))
    flush = torch.set_flush_denormal(True)  # saturated sigmoids' gradients underflow to
    try:  # denormals, which x86 CPUs compute 10-100x slower
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=g).split(batch_size):
                code = binary_code(encoder.net(target[idx]), noise[idx], binarize)  # (b, bits)
                loss = F.mse_loss(decoder(code), target[idx], reduction="sum") / len(idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        if flush:
            torch.set_flush_denormal(False)
    encoder.eval()
    with torch.no_grad():
        t = target[:4096]  # (n, P), mean squared norm about 1
        p = torch.sigmoid(encoder.net(t))  # (n, bits) without the noise
        from_bits = F.mse_loss(decoder((p > 0.5).float()), t, reduction="sum") / len(t)
        saturated = float(((p < 0.1) | (p > 0.9)).float().mean())
    return encoder, {"bits": bits, "binarize": binarize, "hidden": hidden,
                     "pca_dims": pca_dims, "epochs": epochs,
                     "noise_std": noise_std if binarize == "noise" else None, "seed": seed,
                     "vectors": len(x),
                     "loss": float(loss.detach()), "error_from_bits": float(from_bits),
                     "saturated": saturated, "ones": float((p > 0.5).float().mean()),
                     "seconds": time.perf_counter() - start}


def encoder_state(encoder: CodeEncoder, record: dict[str, Any]) -> dict[str, Any]:
    """What a features file keeps to encode queries: plain tensors and numbers."""
    return {"format": FORMAT, "dim": encoder.mean.shape[0], "bits": record["bits"],
            "hidden": record["hidden"], "pca_dims": record["pca_dims"], "training": dict(record),
            "state_dict": {k: v.detach().clone() for k, v in encoder.state_dict().items()}}


def load_encoder(state: dict[str, Any]) -> CodeEncoder:
    """The encoder `encoder_state` stored."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(f"not a binary-code encoder: expected format {FORMAT!r}")
    encoder = CodeEncoder(int(state["dim"]), int(state["bits"]), int(state["hidden"]),
                          int(state["pca_dims"]))
    encoder.load_state_dict(state["state_dict"])
    return encoder.eval()


# ---------------------------------------------------------------- packed bits

_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)  # first bit: MSB


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Bits (N, B) bool or 0/1 -> bytes (N, ceil(B/8)) uint8, the first bit the high bit of
    byte 0 (numpy.packbits' order); the last byte is padded with zeros."""
    b = bits.to(torch.uint8)
    pad = -b.shape[1] % 8
    b = F.pad(b, (0, pad)).view(b.shape[0], -1, 8)  # (N, W, 8)
    return (b * _BIT_WEIGHTS).sum(2, dtype=torch.uint8)  # (N, W): no carries, bits disjoint


def unpack_bits(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """Bytes (N, W) uint8 -> bits (N, bits) bool; the inverse of `pack_bits`."""
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8)
    b = (packed[..., None] >> shifts) & 1  # (N, W, 8)
    return b.flatten(1)[:, :bits].bool()


def _words(packed: torch.Tensor) -> torch.Tensor:
    """Packed bytes (N, W) as 64-bit words (N, ceil(W/8)) int64 (zero bytes padded: XOR of
    padding is 0, so distances do not change)."""
    p = packed.to(torch.uint8)
    return F.pad(p, (0, -p.shape[1] % 8)).contiguous().view(torch.int64)


_M1, _M2, _M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F


def popcount64(x: torch.Tensor) -> torch.Tensor:
    """Set bits of each int64 (SWAR: sums of 2, 4, 8 bits, then of the 8 bytes). The masks'
    high bits are 0, so the sign bits that >> copies in on negative words are dropped."""
    x = x - ((x >> 1) & _M1)  # 2-bit fields: 0..2
    x = (x & _M2) + ((x >> 2) & _M2)  # 4-bit fields: 0..4; x >= 0 from here
    x = (x + (x >> 4)) & _M4  # bytes: 0..8
    x = x + (x >> 8)
    x = x + (x >> 16)
    x = x + (x >> 32)
    return x & 0x7F  # 0..64


# byte value -> its 8 bits as ±1 floats, high bit first: (256, 8)
_SIGNS = ((torch.arange(256)[:, None] >> torch.arange(7, -1, -1)) & 1).float() * 2 - 1


def _signs(packed: torch.Tensor) -> torch.Tensor:
    """Packed codes (N, W) as ±1 floats (N, 8W): bit 1 -> +1, bit 0 -> -1 (padding -1); one
    table lookup per byte."""
    return _SIGNS[packed.long()].flatten(1)


def _chunk_distances(queries: Any, chunk: torch.Tensor, method: str, block: int
                     ) -> torch.Tensor:
    """Hamming distances (Q, c) int64 of prepared queries (words or signs) to a packed chunk."""
    if method == "matmul":  # ±1 codes: q·b = agreements − disagreements = nbits − 2·distance
        nbits = chunk.shape[1] * 8
        return ((nbits - queries @ _signs(chunk).T) / 2).round().long()  # exact below 2^24
    b = _words(chunk)  # (c, w)
    rows = max(1, block // max(1, b.numel()))  # queries per XOR table of at most `block` words
    return torch.cat([xor_popcount(queries[i:i + rows], b)
                      for i in range(0, len(queries), rows)])


NUMPY_POPCOUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0: the CPU's popcount instruction


def xor_popcount(q: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Bits that differ, (q, c) int64, between 64-bit words (q, w) and (c, w): numpy's
    `bitwise_count` on CPU tensors where it exists (tens of times faster than shifts and masks
    in torch), else `popcount64`."""
    if NUMPY_POPCOUNT and q.device.type == "cpu":
        qn, bn = q.numpy().view(np.uint64), b.numpy().view(np.uint64)
        return torch.from_numpy(np.bitwise_count(qn[:, None, :] ^ bn[None]).sum(
            2, dtype=np.int64))
    return popcount64(q[:, None, :] ^ b[None]).sum(2)


HAMMING_METHODS = ("popcount", "matmul")


@torch.no_grad()
def hamming_distances(queries: torch.Tensor, base: torch.Tensor, method: str = "popcount"
                      ) -> torch.Tensor:
    """Hamming distances (Q, N) int64 between packed codes (Q, W) and (N, W)."""
    prepared = _words(queries) if method == "popcount" else _signs(queries)
    return _chunk_distances(prepared, base, method, 1 << 22)


@torch.no_grad()
def hamming_neighbors(queries: torch.Tensor, base: torch.Tensor, k: int = 6, *,
                      chunk_size: int = 65536, method: str = "popcount", block: int = 1 << 22
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` packed codes of `base` (N, W) nearest to each packed query (Q, W) in Hamming
    distance: (distances (Q, k) int64 ascending, indices (Q, k)); ties go to the lower index,
    so the result is the brute-force sort's. `base` is read `chunk_size` codes at a time, so
    memory is bounded whatever N is.

    `method`: `popcount` XORs 64-bit words and counts their bits (`xor_popcount`; each XOR
    table holds at most `block` words); `matmul` unpacks each chunk to ±1 floats and takes one
    matrix product (distance = (bits − q·b) / 2). Both give the same integers; which is faster
    depends on the machine (benchmarks/retrieval_codes.py)."""
    n = base.shape[0]
    if n == 0:
        raise DataError("the code set is empty: no neighbours to search")
    if queries.shape[1] != base.shape[1]:
        raise AlexNetError(f"query codes have {queries.shape[1]} bytes, the stored ones "
                           f"{base.shape[1]}: they come from different encoders")
    if k < 1:
        raise AlexNetError(f"k must be at least 1, got {k}")
    if method not in HAMMING_METHODS:
        raise AlexNetError(f"method must be one of {', '.join(HAMMING_METHODS)}, got {method!r}")
    k = min(k, n)
    prepared = _words(queries) if method == "popcount" else _signs(queries)  # (Q, w) | (Q, 8W)
    best = torch.empty((len(queries), 0), dtype=torch.int64)  # keys distance·n + index
    for lo in range(0, n, chunk_size):
        chunk = base[lo:lo + chunk_size]
        d = _chunk_distances(prepared, chunk, method, block)  # (Q, c)
        keys = d * n + torch.arange(lo, lo + len(chunk))  # unique: a total order, ties by index
        cand = torch.cat([best, keys], dim=1)
        best = cand.topk(min(k, cand.shape[1]), dim=1, largest=False, sorted=True).values
    return best // n, best % n

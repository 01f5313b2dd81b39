"""§6.1's short binary codes against the Euclidean search of the 4096-d vectors: precision@k
and queries per second, on features files or on synthetic sets of any size.

    # features files of one checkpoint: the stored split with codes, and the queries
    alexnet features RUN --split train --codes 64 128 256 --out train.pt
    alexnet features RUN --split val --out val.pt
    PYTHONPATH=src python benchmarks/retrieval_codes.py train.pt val.pt [-k 6] [--json]

    # search speed only, random vectors and codes (N stored, Q queries)
    PYTHONPATH=src python benchmarks/retrieval_codes.py --synthetic 100000 [--queries 100]
        [--bits 64 256] [--threads 2]

Precision needs real features (`evaluation.retrieval.file_code_report`); the synthetic mode
shows how the searches scale with the stored set: the Euclidean search reads N·4096 float16
values (8 KB per image), the Hamming search N·bits/8 bytes. Times: the best of 3 runs, CPU,
a Hamming query's time without encoding it (the synthetic codes need no encoder).
"""

from __future__ import annotations

import argparse
import json

import torch

from alexnet.evaluation.codes import hamming_neighbors, pack_bits
from alexnet.evaluation.feature_retrieval import (
    chunk_rows,
    file_code_report,
    format_code_report,
    nearest_neighbors,
    queries_per_second,
)


def synthetic_speed(stored: int, queries: int, bits: list[int], k: int = 6, dim: int = 4096,
                    seed: int = 0) -> dict:
    """Queries/s of each search over `stored` random vectors (float16, like a features file)
    and random packed codes."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(stored, dim, generator=g).half()  # (N, D): non-negative, as fc7
    q = torch.rand(queries, dim, generator=g)
    out = {"stored": stored, "queries": queries, "k": k, "euclidean": queries_per_second(
        lambda: nearest_neighbors(q, base, k, chunk_size=chunk_rows(dim)), queries)}
    for b in bits:
        codes = pack_bits(torch.rand(stored, b, generator=g) > 0.5)  # (N, b/8)
        qc = pack_bits(torch.rand(queries, b, generator=g) > 0.5)
        for method in ("matmul", "popcount"):
            out[f"{b}-bit {method}"] = queries_per_second(
                lambda c=codes, m=method, q=qc: hamming_neighbors(q, c, k, method=m), queries)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", metavar="STORED QUERIES")
    parser.add_argument("-k", type=int, default=6)
    parser.add_argument("--synthetic", type=int, metavar="N", help="N random stored vectors")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--bits", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.synthetic:
        r = synthetic_speed(args.synthetic, args.queries, args.bits, args.k)
        print(json.dumps(r, indent=2) if args.json else "\n".join(
            f"{key:>16}: {value:>12,.0f} queries/s" for key, value in r.items()
            if key not in ("stored", "queries", "k")) + f"\n({r['stored']:,} stored, "
            f"{r['queries']} queries, k={r['k']}, {torch.get_num_threads()} threads)")
        return
    if len(args.files) != 2:
        parser.error("give STORED QUERIES (two features files) or --synthetic N")
    r = file_code_report(*args.files, k=args.k)
    print(json.dumps(r, indent=2) if args.json else format_code_report(r))


if __name__ == "__main__":
    main()

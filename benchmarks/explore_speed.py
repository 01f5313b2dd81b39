"""How fast `alexnet explore` answers on a CPU: the `paper` net at its trained size (224 px,
random weights: speed does not depend on them), through the server's own endpoints
(Starlette's TestClient, in process, no socket).

    PYTHONPATH=src python benchmarks/explore_speed.py [--threads 2] [--classes 1000]
        [--repeats 5] [--grid 10] [--image 500x375]

Timed, each the median of `--repeats` fresh images (every repeat uploads another image, so
nothing is cached between them):
- upload: POST /api/analyse with a JPEG: decode, §4.1's ten views in one batch (top-5 from
  the centre view and from the ten), every layer's maps recorded (target <= 0.5 s);
- upload + one layer: the same, then the two tower pictures of conv1 (what the Layers tab
  draws first);
- all layers: the tower pictures of every conv and pool layer, after the upload;
- occlusion: GET .../where/occlusion, the grid×grid sweep of grey squares in batches
  (target <= 5 s), then its picture.
The load average is printed: the machine's cores may be shared with other work.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import torch
from PIL import Image
from starlette.testclient import TestClient

from alexnet.explore import server
from alexnet.explore.analysis import Explorer
from alexnet.explore.server import Session, build_app
from alexnet.models import create_model


def jpeg_bytes(width: int, height: int, seed: int) -> bytes:
    """A photo-sized JPEG of smooth random colour (not a constant: JPEG decode costs)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(3, height // 16 + 1, width // 16 + 1, generator=g)
    big = torch.nn.functional.interpolate(small[None], size=(height, width), mode="bilinear")[0]
    pixels = (big * 255).byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--grid", type=int, default=server.OCCLUSION_GRID)
    ap.add_argument("--image", default="500x375", help="uploaded image size, WxH")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    server.OCCLUSION_GRID = args.grid
    width, height = (int(v) for v in args.image.split("x"))

    model = create_model("paper", num_classes=args.classes)  # 224 px, two towers
    ex = Explorer(model, [f"class {i}" for i in range(args.classes)],
                  {"mean": torch.tensor([123.7, 116.3, 103.5]).view(3, 1, 1),
                   "std": torch.tensor([58.4, 57.1, 57.4]).view(3, 1, 1)},
                  {"resize": 256, "crop": 224, "channels": 3, "size": 224}, "random paper")
    client = TestClient(build_app(Session([ex])))
    layers = [t.name for t in ex.taps if t.kind != "fc"]
    client.post("/api/analyse", content=jpeg_bytes(width, height, 999))  # warm-up

    times: dict[str, list[float]] = {"upload": [], "upload + conv1": [], "all layers": [],
                                     "occlusion": [], "occlusion picture": []}
    for r in range(args.repeats):
        body = jpeg_bytes(width, height, r)
        t0 = time.perf_counter()
        reply = client.post("/api/analyse", content=body)
        t1 = time.perf_counter()
        assert reply.status_code == 200, reply.text
        key = reply.json()["id"]
        for tower in (0, 1):
            assert client.get(f"/api/analyses/{key}/0/layers/conv1.png?tower={tower}"
                              ).status_code == 200
        t2 = time.perf_counter()
        for name in layers:
            for tower in (0, 1):
                client.get(f"/api/analyses/{key}/0/layers/{name}.png?tower={tower}")
        t3 = time.perf_counter()
        cls = reply.json()["models"][0]["top5_centre"][0]["class"]
        occ = client.get(f"/api/analyses/{key}/0/where/occlusion?class={cls}")
        t4 = time.perf_counter()
        assert occ.status_code == 200, occ.text
        client.get(occ.json()["url"])
        t5 = time.perf_counter()
        for name, value in zip(times, (t1 - t0, t2 - t0, t3 - t2, t4 - t3, t5 - t4),
                               strict=True):
            times[name].append(value)

    o = occ.json()
    print(f"paper net, 224 px, {args.classes} classes, {args.threads} threads, "
          f"{width}×{height} JPEG uploads, {args.repeats} repeats; occlusion {o['grid']}×"
          f"{o['grid']} squares of {o['patch']} px, stride {o['stride']}")
    print(f"load average before/after: {LOAD_BEFORE} / {os.getloadavg()[0]:.2f}")
    for name, values in times.items():
        print(f"  {name:18s} median {statistics.median(values):6.3f} s  "
              f"(min {min(values):.3f}, max {max(values):.3f})")


LOAD_BEFORE = f"{os.getloadavg()[0]:.2f}"

if __name__ == "__main__":
    main()

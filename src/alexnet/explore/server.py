"""The explorer's web server: JSON endpoints over `analysis.py` and `index.py`, picture
endpoints over `pictures.py`, and one static page (static/: index.html, app.js, style.css,
written for this package, no CDN: it works offline).

Why Starlette and uvicorn (not Gradio, not FastAPI): the page needs its own layout (two towers
side by side, maps clicked to enlarge, two checkpoints in columns), which Gradio's components
do not give without fighting them, and Gradio pulls in a large front-end bundle; FastAPI adds
pydantic for request models that a dozen small endpoints do not need. Starlette routes,
serves the static folder (refusing paths outside it), and its TestClient drives every endpoint
in the tests without a socket; uvicorn is the server it is written for.

What is served: the static folder, and pictures computed from the checkpoint and from images
of the data source addressed by their number in the explorer's lists, never by a path, so no
request can name a file outside the run and data folders. Uploads are read up to a size limit
and decoded with a pixel limit; every bad request is a JSON `{"error": ...}` the page shows,
and the server goes on serving.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from alexnet.data import decode_image
from alexnet.errors import AlexNetError
from alexnet.evaluation.kernel_colour import kernel_chroma, tower_chroma
from alexnet.explore import pictures
from alexnet.explore.analysis import (
    Analysis,
    Explorer,
    analyse,
    check_class,
    grad_cam,
    kernel_tiles,
    occlusion,
    occlusion_map,
    receptive_field,
    top5,
)
from alexnet.explore.index import Dataset, IndexJob, neighbours

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # an upload larger than this is refused unread (413)
MAX_PIXELS = 40_000_000  # and a decoded image larger than this (a 40-megapixel photo)
KEEP_ANALYSES = 32  # analysed images kept for the page's later requests (layers, occlusion)
OCCLUSION_GRID = 10  # 10×10 squares: 100 forward passes (benchmarks/explore_speed.py)


@dataclass
class Entry:
    """An analysed image: where it came from and one `Analysis` per model."""

    name: str
    label: str | None
    image: torch.Tensor
    results: list[Analysis]


class Session:
    """Everything the server holds: the models (`--compare` adds a second), the dataset, the
    dataset passes and the analysed images."""

    def __init__(self, explorers: list[Explorer], dataset: Dataset | None = None, *,
                 data_note: str = "", caches: list[Path | None] | None = None,
                 max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS) -> None:
        self.explorers, self.dataset, self.data_note = explorers, dataset, data_note
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self.locks = [threading.Lock() for _ in explorers]
        caches = caches or [None] * len(explorers)
        self.jobs = [IndexJob(ex, dataset, c, lock) for ex, c, lock in
                     zip(explorers, caches, self.locks, strict=True)] if dataset else []
        self.analyses: OrderedDict[str, Entry] = OrderedDict()
        self.first: str | None = None
        self.shapes = [self._shapes(ex) for ex in explorers]

    @staticmethod
    def _shapes(ex: Explorer) -> dict[str, tuple[int, ...]]:
        """Each tap's output shape, from one blank image."""
        c = int(ex.preprocess.get("channels", 3))
        with torch.no_grad():
            a = analyse(ex, torch.zeros(c, ex.size, ex.size, dtype=torch.uint8))
        return {k: tuple(v.shape) for k, v in a.maps.items()}

    # ------------------------------------------------------------ analyses

    def add(self, image: torch.Tensor, name: str, label: str | None = None) -> dict[str, Any]:
        results = []
        for ex, lock in zip(self.explorers, self.locks, strict=True):
            with lock:
                results.append(analyse(ex, image))
        key = secrets.token_hex(6)
        self.analyses[key] = Entry(name, label, image, results)
        while len(self.analyses) > KEEP_ANALYSES:
            self.analyses.popitem(last=False)
        return self.describe(key)

    def entry(self, key: str, m: int = 0) -> tuple[Entry, Explorer, Analysis]:
        entry = self.analyses.get(key)
        if entry is None:
            raise HTTPException(404, f"no analysed image {key!r} (the server keeps the last "
                                     f"{KEEP_ANALYSES}); analyse it again")
        return entry, self.model(m), entry.results[m]

    def model(self, m: int) -> Explorer:
        if not 0 <= m < len(self.explorers):
            raise HTTPException(404, f"no model {m}: there are {len(self.explorers)}")
        return self.explorers[m]

    def describe(self, key: str) -> dict[str, Any]:
        entry = self.analyses[key]
        models = []
        for m, (ex, a) in enumerate(zip(self.explorers, entry.results, strict=True)):
            models.append({"top5_centre": top5(a.probs_centre, ex.classes),
                           "top5_ten": top5(a.probs_ten, ex.classes),
                           "layers": self.layers(m, a)})
        return {"id": key, "name": entry.name, "label": entry.label, "models": models}

    def layers(self, m: int, a: Analysis) -> list[dict[str, Any]]:
        """The conv and pool maps' layout: per tower its channels and the atlas grid."""
        ex, out = self.explorers[m], []
        for t in ex.taps:
            if t.kind == "fc":
                continue
            c, h, w = a.maps[t.name].shape
            towers = ex.towers if c % ex.towers == 0 else 1
            count = c // towers
            cols, rows = pictures.grid_shape(count)
            k = pictures.cell_scale(h)
            out.append({"name": t.name, "kind": t.kind, "channels": c, "h": h, "w": w,
                        "cell": [h * k + pictures.GAP, w * k + pictures.GAP],
                        "towers": [{"first": i * count, "count": count, "cols": cols,
                                    "rows": rows} for i in range(towers)]})
        return out

    def info(self) -> dict[str, Any]:
        models = []
        for ex, shapes in zip(self.explorers, self.shapes, strict=True):
            models.append({"source": ex.source, "name": ex.model.config.get("name"),
                           "classes": len(ex.classes), "towers": ex.towers, "size": ex.size,
                           "note": ex.note,
                           "units": [{"layer": t.name, "kind": t.kind,
                                      "count": shapes[t.name][0]} for t in ex.taps]})
        data = None
        if self.dataset is not None:
            data = {"name": self.dataset.name, "samples": len(self.dataset.samples),
                    "store": len(self.dataset.store), "classes": len(self.dataset.classes)}
        return {"models": models, "data": data, "data_note": self.data_note,
                "first": self.first, "max_bytes": self.max_bytes,
                "max_pixels": self.max_pixels}


# ---------------------------------------------------------------- endpoints


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def _png(array) -> Response:
    return Response(pictures.png(array), media_type="image/png",
                    headers={"Cache-Control": "no-store"})


def _int(request: Request, name: str, default: int | None = None) -> int:
    value = request.query_params.get(name)
    if value is None:
        if default is None:
            raise AlexNetError(f"missing ?{name}=")
        return default
    try:
        return int(value)
    except ValueError:
        raise AlexNetError(f"?{name}= must be a whole number, got {value!r}") from None


def build_app(session: Session) -> Starlette:
    """The Starlette application over a `Session`."""
    s = session

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> Response:
        return _json(s.info())

    async def samples(request: Request) -> Response:
        if s.dataset is None:
            return _json({"samples": [], "note": s.data_note})
        d = s.dataset
        return _json({"samples": [{"index": i, "label": d.label("val", i)}
                                  for i in range(len(d.samples))]})

    def _image(split: str, i: int) -> torch.Tensor:
        if s.dataset is None:
            raise HTTPException(404, "the explorer has no dataset (start it with --data DIR)")
        try:
            return s.dataset.image(split, i)
        except IndexError as err:
            raise HTTPException(404, str(err)) from None

    def image_route(split: str):
        async def picture(request: Request) -> Response:
            img = await run_in_threadpool(_image, split, request.path_params["i"])
            side = max(16, min(_int(request, "side", 256), 1024))
            return Response(pictures.jpeg(img, side), media_type="image/jpeg")
        return picture

    async def analyse_sample(request: Request) -> Response:
        i = request.path_params["i"]
        img = await run_in_threadpool(_image, "val", i)
        return _json(await run_in_threadpool(s.add, img, f"sample {i}",
                                             s.dataset.label("val", i)))

    async def analyse_upload(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > s.max_bytes:
            return _json({"error": f"the file is {int(length):,} bytes, more than the "
                                   f"{s.max_bytes:,} allowed; send a smaller image"}, 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > s.max_bytes:
                return _json({"error": f"the file is more than the {s.max_bytes:,} bytes "
                                       "allowed; send a smaller image"}, 413)
        name = request.query_params.get("name", "upload")[:200]

        def work() -> dict[str, Any]:
            image = decode_image(bytes(body), name, max_pixels=s.max_pixels)
            return s.add(image, name)

        return _json(await run_in_threadpool(work))

    async def analysis(request: Request) -> Response:
        s.entry(request.path_params["key"])
        return _json(s.describe(request.path_params["key"]))

    async def view(request: Request) -> Response:
        _, _, a = s.entry(request.path_params["key"], request.path_params["m"])
        return _png(pictures.hwc(a.picture))

    async def layer_atlas(request: Request) -> Response:
        _, ex, a = s.entry(request.path_params["key"], request.path_params["m"])
        tap = ex.tap(request.path_params["layer"])
        if tap.kind == "fc":
            raise AlexNetError(f"{tap.name} is a fully connected layer: it has no maps")
        maps = a.maps[tap.name]
        towers = ex.towers if maps.shape[0] % ex.towers == 0 else 1
        t = _int(request, "tower", 0)
        if not 0 <= t < towers:
            raise AlexNetError(f"no tower {t}: this layer has {towers}")
        part = maps.chunk(towers)[t]
        return _png(pictures.atlas(part, float(maps.max())))

    async def layer_map(request: Request) -> Response:
        _, ex, a = s.entry(request.path_params["key"], request.path_params["m"])
        tap = ex.tap(request.path_params["layer"])
        maps = a.maps[tap.name]
        c = request.path_params["c"]
        if tap.kind == "fc" or not 0 <= c < maps.shape[0]:
            raise AlexNetError(f"no map {c} in {tap.name} ({maps.shape[0]} channels)")
        return _png(pictures.heat(maps[c], ex.size))

    def _occlusion(key: str, m: int) -> tuple[Explorer, Analysis, float]:
        _, ex, a = s.entry(key, m)
        start = time.perf_counter()
        if a.occlusion is None:
            with s.locks[m]:
                a.occlusion = occlusion(ex, a.view, grid=OCCLUSION_GRID)
        return ex, a, time.perf_counter() - start

    async def where(request: Request) -> Response:
        key, m = request.path_params["key"], request.path_params["m"]
        method = request.path_params["method"]
        ex = s.model(m)
        cls = check_class(ex, request.query_params.get("class", ""))
        if method == "occlusion":
            ex, a, seconds = await run_in_threadpool(_occlusion, key, m)
            o = a.occlusion
            drop = float(o["base"][cls] - o["probs"][..., cls].min())
            return _json({"method": method, "class": cls, "name": ex.classes[cls],
                          "seconds": seconds, "patch": o["patch"], "stride": o["stride"],
                          "grid": OCCLUSION_GRID, "largest_drop": drop,
                          "url": f"/api/analyses/{key}/{m}/occlusion.png?class={cls}"})
        if method == "gradcam":
            return _json({"method": method, "class": cls, "name": ex.classes[cls],
                          "layer": [t for t in ex.taps if t.kind == "conv"][-1].name,
                          "url": f"/api/analyses/{key}/{m}/gradcam.png?class={cls}"})
        raise HTTPException(404, f"unknown method {method!r}: occlusion or gradcam")

    async def where_png(request: Request) -> Response:
        key, m = request.path_params["key"], request.path_params["m"]
        ex = s.model(m)
        cls = check_class(ex, request.query_params.get("class", ""))
        if request.path_params["method"] == "occlusion":
            ex, a, _ = await run_in_threadpool(_occlusion, key, m)
            return _png(pictures.heat(occlusion_map(a.occlusion, cls, ex.size), ex.size,
                                      signed=True))
        _, ex, a = s.entry(key, m)

        def cam() -> torch.Tensor:
            with s.locks[m]:
                return grad_cam(ex, a.view, cls)

        return _png(pictures.heat(await run_in_threadpool(cam), ex.size))

    async def kernels(request: Request) -> Response:
        ex = s.model(request.path_params["m"])
        w = ex.model.conv1.weight.detach()
        towers = ex.towers if w.shape[0] % ex.towers == 0 else 1
        try:
            chroma = [round(float(c), 4) for c in kernel_chroma(w)]
            split = tower_chroma(w, towers)
        except AlexNetError as err:  # a grey-image model has no colour to measure
            chroma, split = [], str(err)
        return _json({"kernels": int(w.shape[0]), "shape": list(w.shape[1:]), "towers": towers,
                      "chroma": chroma, "split": split,
                      "urls": [f"/api/kernels/{request.path_params['m']}/{t}.png"
                               for t in range(towers)]})

    async def kernels_png(request: Request) -> Response:
        ex = s.model(request.path_params["m"])
        w = ex.model.conv1.weight.detach()
        towers = ex.towers if w.shape[0] % ex.towers == 0 else 1
        t = request.path_params["t"]
        if not 0 <= t < towers:
            raise HTTPException(404, f"no tower {t}: conv1 has {towers}")
        return _png(pictures.kernel_atlas(kernel_tiles(w.chunk(towers)[t])))

    def _job(m: int) -> IndexJob:
        s.model(m)
        if not s.jobs:
            raise AlexNetError("no dataset to search: start the explorer with --data DIR"
                               + (f" ({s.data_note})" if s.data_note else ""))
        return s.jobs[m]

    async def index_status(request: Request) -> Response:
        job = _job(request.path_params["m"])
        if request.method == "POST":
            return _json(await run_in_threadpool(job.start))
        return _json(job.status())

    async def neighbours_of(request: Request) -> Response:
        key, m = request.path_params["key"], request.path_params["m"]
        _, ex, a = s.entry(key, m)
        result = _job(m).ready()
        by = request.query_params.get("by", "fc7")
        k = max(1, min(_int(request, "k", 6), 32))
        layer = "fc7" if "fc7" in a.maps else ex.taps[-1].name
        dist, idx = await run_in_threadpool(neighbours, result, a.maps[layer], k, by)
        return _json({"by": by, "layer": layer, "neighbours": [
            {"index": int(i), "distance": float(d), "label": s.dataset.label("train", int(i)),
             "url": f"/api/store/{int(i)}.jpg"} for d, i in zip(dist, idx, strict=True)]})

    def _unit(m: int, layer: str, u: int) -> tuple[Explorer, dict[str, Any], Any]:
        ex = s.model(m)
        tap = ex.tap(layer)
        result = _job(m).ready()
        values = result["values"][tap.name]
        if not 0 <= u < values.shape[0]:
            raise AlexNetError(f"no unit {u} in {layer}: it has units 0 to {values.shape[0] - 1}")
        return ex, result, tap

    async def unit(request: Request) -> Response:
        m, layer, u = (request.path_params[k] for k in ("m", "layer", "u"))
        ex, result, tap = _unit(m, layer, u)
        values, images = result["values"][tap.name][u], result["images"][tap.name][u]
        box = None
        if tap.kind != "fc":
            box = dict(zip(("size", "stride", "offset"), receptive_field(ex.model, tap.name),
                           strict=True))
        return _json({"layer": tap.name, "unit": u, "kind": tap.kind, "field": box,
                      "examples": [{"rank": r, "index": int(i), "value": float(v),
                                    "label": s.dataset.label("train", int(i)),
                                    "url": f"/api/units/{m}/{tap.name}/{u}/{r}.png"}
                                   for r, (v, i) in enumerate(zip(values, images, strict=True))]})

    async def unit_png(request: Request) -> Response:
        m, layer, u, r = (request.path_params[k] for k in ("m", "layer", "u", "r"))
        ex, result, tap = _unit(m, layer, u)
        images = result["images"][tap.name][u]
        if not 0 <= r < len(images):
            raise HTTPException(404, f"no example {r}: unit {u} has {len(images)}")

        def patch():
            i = int(images[r])
            view = ex.views([s.dataset.image("train", i)])[0, 4]
            pic = ex.picture(view)  # (3, s, s)
            if tap.kind == "fc":
                return pictures.hwc(pic)
            size, stride, offset = receptive_field(ex.model, tap.name)
            y, x = (int(v) for v in result["places"][tap.name][u, r])
            top, left = offset + y * stride - size // 2, offset + x * stride - size // 2
            s0 = pic.shape[1]
            crop = pic[:, max(top, 0):min(top + size, s0), max(left, 0):min(left + size, s0)]
            return pictures.hwc(crop)

        return _png(await run_in_threadpool(patch))

    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return _json({"error": str(exc.detail)}, exc.status_code)
        if isinstance(exc, AlexNetError):
            return _json({"error": str(exc)}, 400)
        return _json({"error": f"internal error ({type(exc).__name__}: {exc}); the server "
                               "goes on"}, 500)

    key = "{key:str}/{m:int}"
    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/samples", samples),
        Route("/api/samples/{i:int}.jpg", image_route("val")),  # numbers, never paths
        Route("/api/store/{i:int}.jpg", image_route("train")),
        Route("/api/samples/{i:int}/analyse", analyse_sample, methods=["POST"]),
        Route("/api/analyse", analyse_upload, methods=["POST"]),
        Route("/api/analyses/{key:str}", analysis),
        Route(f"/api/analyses/{key}/view.png", view),
        Route(f"/api/analyses/{key}/layers/{{layer:str}}.png", layer_atlas),
        Route(f"/api/analyses/{key}/maps/{{layer:str}}/{{c:int}}.png", layer_map),
        Route(f"/api/analyses/{key}/where/{{method:str}}", where),
        Route(f"/api/analyses/{key}/{{method:str}}.png", where_png),
        Route(f"/api/analyses/{key}/neighbours", neighbours_of),
        Route("/api/kernels/{m:int}", kernels),
        Route("/api/kernels/{m:int}/{t:int}.png", kernels_png),
        Route("/api/index/{m:int}", index_status, methods=["GET", "POST"]),
        Route("/api/units/{m:int}/{layer:str}/{u:int}", unit),
        Route("/api/units/{m:int}/{layer:str}/{u:int}/{r:int}.png", unit_png),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={Exception: on_error,
                                                       HTTPException: on_error,
                                                       AlexNetError: on_error})
    app.state.session = session
    return app

"""`alexnet explore`: a local web page that shows what a trained network learned (its
predictions, layers, conv1 kernels, where it looks, neighbours and units), for one checkpoint
or two side by side. `analysis.py` computes, `index.py` passes over the dataset, `pictures.py`
draws, `server.py` serves; `serve` puts them together.

Needs the `explore` extra (starlette, uvicorn): `pip install -e .[explore]`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from alexnet.errors import AlexNetError, ConfigError
from alexnet.explore.analysis import load_explorer
from alexnet.explore.index import cache_folder, open_dataset
from alexnet.weights.checkpoint import open_checkpoint


def make_session(checkpoint: str, *, data: str | None = None, compare: str | None = None,
                 limit: int = 2000, cache: bool = True) -> Any:
    """A `server.Session` for a checkpoint (and `compare`), with `data` (default: the
    checkpoint's own source, when it can be opened) analysed on its first sample."""
    from alexnet.explore.server import Session  # starlette: the `explore` extra

    specs = [checkpoint] + ([compare] if compare else [])
    opened = [open_checkpoint(c, device="cpu") for c in specs]
    explorers = [load_explorer(c, o) for c, o in zip(specs, opened, strict=True)]
    dataset, note = open_dataset(opened[0].state, data, limit=limit)
    caches: list[Path | None] = [cache_folder(c) if cache else None for c in specs]
    session = Session(explorers, dataset, data_note=note, caches=caches)
    if dataset is not None and dataset.samples:
        session.first = session.add(dataset.image("val", 0), "sample 0",
                                    dataset.label("val", 0))["id"]
    return session


def bind(host: str = "127.0.0.1", port: int = 0) -> tuple[socket.socket, str]:
    """A listening socket on host:port (0: any free port) and its URL."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise AlexNetError(f"cannot listen on {host}:{port} ({err.strerror or err}); choose "
                           "another --port") from None
    shown = f"[{host}]" if ":" in host else host
    return sock, f"http://{shown}:{sock.getsockname()[1]}/"


def serve(checkpoint: str, *, data: str | None = None, compare: str | None = None,
          host: str = "127.0.0.1", port: int = 8000, limit: int = 2000) -> None:
    """Start the explorer's server and block until Ctrl-C. The socket is bound first, so
    the printed URL has the real port (`--port 0`: any free one)."""
    try:
        import uvicorn

        from alexnet.explore.server import build_app
    except ImportError as err:
        raise ConfigError(f"alexnet explore needs the `explore` extra ({err.name} is missing): "
                          "pip install -e '.[explore]'") from None
    session = make_session(checkpoint, data=data, compare=compare, limit=limit)
    sock, url = bind(host, port)
    print(f"alexnet explore: {url}  (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(build_app(session), log_level="warning", lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then raises it again
        pass
    finally:
        sock.close()
    print("alexnet explore: stopped", flush=True)

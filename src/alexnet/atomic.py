"""Every file the package writes goes through here: a temporary file in the target's folder,
flushed and fsynced, then renamed over the target. A crash, a kill or a full disk leaves the old
file or the new one, never a torn one; a failed write removes its temporary file and becomes one
`WriteError` naming the path. Files get the permissions the umask gives (as `open` would).

Temporary files are named `.<name>.<random>.tmp`; `remove_stale_temps` deletes those a killed
process left behind (call it only where no other process can be writing, e.g. under a run's lock).
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from alexnet.errors import WriteError

TEMP_SUFFIX = ".tmp"
_open = open  # the test suite patches this to simulate a full disk

REASONS = {
    errno.ENOSPC: "no space left on the device; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write elsewhere",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "permission denied; choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
}


def write_error(path: str | os.PathLike, err: OSError) -> WriteError:
    """One `WriteError` for an `OSError` met while writing `path`."""
    reason = REASONS.get(err.errno or 0, f"{err.strerror or err}; check the path and try again")
    return WriteError(f"cannot write {path}: {reason}")


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells (/proc), else by the
    classic set-and-restore."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not allow opening a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; when the block ends without an error the file
    written there is fsynced and renamed to `path`. For writers that want a file name."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX,
                                    dir=path.parent)
        try:  # mkstemp makes it 0600; the file gets what open() would give: 0644 under 022
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
    except OSError as err:
        raise write_error(path, err) from None
    tmp = Path(name)
    try:
        yield tmp
        with _open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_error(path, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


class _Tracked:
    """A file that remembers the first `OSError` of a write: some writers (torch.save's zip
    writer) turn it into another exception, and the full disk must still be named."""

    def __init__(self, f: IO[Any]) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """`open(path, mode)` for writing (`wb` or `w`, UTF-8), made atomic."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', not {mode!r}")
    with atomic_path(path) as tmp:
        kwargs = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
        with _open(tmp, mode, **kwargs) as raw:
            f = _Tracked(raw)
            try:
                yield f  # type: ignore[misc]
                f.flush()
            except Exception as err:
                if f.error is not None and not isinstance(err, OSError):
                    raise f.error from None
                raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text, atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def append_text(path: str | os.PathLike, text: str) -> Path:
    """The file's text plus `text`, rewritten atomically (small logs such as metrics.jsonl)."""
    path = Path(path)
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as err:
        raise write_error(path, err) from None
    return write_text(path, old + text)


def save_with(path: str | os.PathLike, save: Callable[[IO[bytes]], Any]) -> Path:
    """`save(file)` into a buffer, then the bytes atomically: for writers (torch.save, ONNX,
    TorchScript, safetensors) whose own failure on a full disk can be a torn file or worse."""
    buffer = io.BytesIO()
    save(buffer)
    return write_bytes(path, buffer.getvalue())


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer left in `folder`; returns them."""
    folder = Path(folder)
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale

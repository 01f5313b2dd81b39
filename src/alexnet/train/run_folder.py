"""A run folder belongs to one run.

- `train --out DIR` on a folder that already holds something is refused (`--resume DIR`
  continues it; `--force` moves it aside to `DIR.replaced-<time>` and starts over);
- a lock file (`DIR/.lock`, an OS lock that dies with its process) stops a second process from
  training or resuming in the same folder;
- a refused or failed start leaves no folder behind (the folder is made, and `config.yaml`
  written, only once the data and the model are built);
- temporary files of a killed writer (`alexnet.atomic`) are removed under the lock.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

from filelock import FileLock, Timeout

from alexnet.atomic import remove_stale_temps
from alexnet.errors import ConfigError

LOCK = ".lock"


def default_run_dir(recipe: str) -> Path:
    """runs/<recipe>-<time>-<random>: two runs started in the same second still get their own
    folder. The processes of one torchrun job agree on it through the run id."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id and run_id != "none":
        return Path("runs") / f"{recipe}-{run_id}"
    return Path("runs") / f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _contents(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != LOCK) if path.is_dir() else []


class RunFolder:
    """Claim `path` for one run (`claim()`), give it back (`release(failed)`)."""

    def __init__(self, path: str | os.PathLike, *, resume: bool = False,
                 force: bool = False) -> None:
        self.path, self.resume, self.force = Path(path), resume, force
        self.lock: FileLock | None = None
        self.created = False
        self.moved_to: Path | None = None

    def _lock(self, path: Path) -> FileLock:
        lock = FileLock(path / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise ConfigError(f"another process is training in {path} (it holds "
                              f"{path / LOCK}); wait for it to finish, or use another --out"
                              ) from None
        except OSError as err:
            raise ConfigError(f"cannot lock {path / LOCK}: {err.strerror or err}; check "
                              "that the folder is writable") from None
        return lock

    def claim(self) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {path} is a file, not a folder; choose another --out")
        if self.resume:
            self.lock = self._lock(path)
            remove_stale_temps(path)
            return
        if _contents(path):
            if not self.force:
                raise ConfigError(
                    f"{path} already holds a run ({', '.join(_contents(path)[:4])}); continue "
                    f"it with `alexnet train --resume {path}`, start over with --force (the old "
                    "run is moved aside), or choose another --out")
            old = self._lock(path)
            aside = path.with_name(f"{path.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                path.rename(aside)
            finally:
                old.release()
            self.moved_to = aside
            print(f"--force: moved the old run in {path} to {aside}", flush=True)
        self.created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create the run folder {path}: {err.strerror or err}; "
                              "choose another --out") from None
        self.lock = self._lock(path)
        if _contents(path):  # another run started here between the check and the lock
            self.release(failed=False)
            raise ConfigError(f"{path} was claimed by another run a moment ago; choose "
                              "another --out")

    def release(self, failed: bool) -> None:
        """Unlock; a new run that failed before writing its config leaves nothing behind."""
        owned = self.lock is not None  # never remove a lock file another process holds
        if failed and owned and not self.resume and not (self.path / "config.yaml").exists():
            (self.path / LOCK).unlink(missing_ok=True)
            if self.created:
                shutil.rmtree(self.path, ignore_errors=True)
        if self.lock is not None:
            self.lock.release()
            self.lock = None

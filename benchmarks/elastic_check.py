"""Faults on one machine for `torchrun ... -m alexnet train` (docs/DISTRIBUTED.md): each
scenario starts real torchrun agents on 127.0.0.1 (c10d rendezvous, gloo on the CPU), breaks
something by killing or stopping processes from outside, and checks how the run ends.

    python benchmarks/elastic_check.py [--only a,b] [--work DIR]   # prints a pass/fail table

a  two agents (two "nodes" x 1 worker, --nnodes=2) train to the end, with the weights of the
   same job on one agent (the reference: 2 workers, left alone)
b  SIGKILL a worker mid-epoch: torchrun restarts the group, which resumes from the in-epoch
   checkpoint and ends with the reference's weights, bit for bit
c  --nnodes=1:2, one whole agent (a node: agent and worker) SIGKILLed: the other agent
   re-rendezvouses alone and finishes (2 -> 1 processes, the global batch kept)
d  SIGKILL the writer while it writes last.pt: the old or the new checkpoint, never a torn one;
   the restart finishes with the reference's weights
e  SIGSTOP a worker (hung): the job fails within dist_timeout (+ torchrun's 30 s grace to kill
   the stopped process) with an error naming that rank
f  SIGTERM a worker (a preemption): it checkpoints and exits, torchrun restarts the group,
   which resumes and ends with the reference's weights

tests/test_train_elastic.py runs the same scenarios (slow tests). Tiny data (a generated image
tree, 3 classes, 36 px), the cifar4 net at 32 px, 2 epochs of 12 steps.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, STEPS = 2, 12  # 96 training images in batches of 8
TRAIN_ARGS = ["--recipe", "cifar4", "epochs=2", "batch_size=8", "quick=false", "device=cpu",
              "compile=false", "amp=false", "channels_last=false", "deterministic=true",
              "log_every=2", "data.workers=0", "schedule.events=[]", "checkpoint_every=3"]
# a new store for every rendezvous round (docs/DISTRIBUTED.md): with the agents' one shared
# store, a restarted gloo group can read a peer's address of the round before and fail
FRESH_STORE = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
DIST_TIMEOUT = 10  # seconds; scenario e waits this long for the stopped worker


@dataclass
class Outcome:
    ok: bool
    detail: str
    seconds: float = 0.0


def make_data(root: Path, per_class: int = 32, val: int = 8) -> Path:
    """root/{train,val}/class<c>/<i>.png: 36x36 noise whose brightness tells 3 classes apart."""
    from PIL import Image

    if (root / "val").is_dir():
        return root
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", per_class), ("val", val)):
        for c in range(3):
            (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = (torch.rand(36, 36, 3, generator=g) * 80 + 80 * c).byte().numpy()
                Image.fromarray(pixels).save(root / split / f"class{c}" / f"{i}.png")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    """One `torchrun` (an elastic agent: one "node") in its own session, logging to a file."""

    def __init__(self, log: Path, *, nnodes: str, nproc: int, port: int, job: str,
                 restarts: int, data: Path, out: Path, extra: tuple[str, ...] = (),
                 last_call: int = 2) -> None:
        self.log = log
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}",
               f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
               f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={job}",
               f"--rdzv-conf=last_call_timeout={last_call}", f"--max-restarts={restarts}",
               "--monitor-interval=0.2", "-m", "alexnet", "train", *TRAIN_ARGS,
               f"--data={data}", f"--out={out}", f"dist_timeout={DIST_TIMEOUT}", *extra]
        env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}"
                   f"{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1",
                   PYTHONUNBUFFERED="1", **FRESH_STORE)
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                         cwd=ROOT, start_new_session=True)

    def workers(self) -> dict[int, int]:
        """rank -> pid of this agent's live workers (its children, RANK from their env)."""
        found = {}
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for pid in map(int, children):
                try:
                    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                ranks = [e[5:] for e in env if e.startswith(b"RANK=")]
                if ranks:
                    found[int(ranks[0])] = pid
        return found

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the agent and its workers: a node lost."""
        pids = list(self.workers().values())
        for pid in [self.proc.pid, *pids]:
            _signal(pid, signal.SIGKILL)
        self.proc.wait()

    def cleanup(self) -> None:
        """Make sure nothing of this agent survives the scenario."""
        for pid in self.workers().values():
            _signal(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            _signal(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def until(condition: Callable[[], object], timeout: float, every: float = 0.25) -> object:
    """Poll `condition` until it returns something true (returned) or `timeout` passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(every)
    return None


def step_of(run: Path) -> tuple[int, int] | None:
    """(epoch, batch) of run/last.pt, None while there is none."""
    try:
        state = torch.load(run / "last.pt", weights_only=True, map_location="cpu")
    except (OSError, RuntimeError, EOFError):
        return None
    return int(state["epoch"]), int(state["batch"])


def inside_epoch(run: Path) -> bool:
    """A checkpoint written inside an epoch (by checkpoint_every) exists."""
    step = step_of(run) if (run / "last.pt").exists() else None
    return step is not None and step[1] > 0


def finished(run: Path) -> bool:
    return step_of(run) == (EPOCHS, 0)


def same_weights(a: Path, b: Path) -> bool:
    wa = torch.load(a / "last.pt", weights_only=True)["model"]["state_dict"]
    wb = torch.load(b / "last.pt", weights_only=True)["model"]["state_dict"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def world_size(run: Path) -> int:
    return torch.load(run / "last.pt", weights_only=True)["config"]["distributed"]["world_size"]


class Scenarios:
    """The scenarios, sharing one data tree and one reference run under `work`."""

    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.data = make_data(work / "data")
        self._reference: Path | None = None

    def agent(self, name: str, run: Path, **options) -> Agent:
        options.setdefault("job", f"{name}-{os.getpid()}")
        return Agent(self.work / f"{name}.log", data=self.data, out=run, **options)

    def reference(self) -> Path:
        """The job left alone: one agent, 2 workers."""
        if self._reference is None:
            run = self.work / "reference"
            agent = self.agent("reference", run, nnodes="1", nproc=2, port=free_port(),
                               restarts=0)
            rc = agent.wait(180)
            agent.cleanup()
            if rc != 0 or not finished(run):
                raise RuntimeError(f"the reference run failed (rc {rc}); see {agent.log}")
            self._reference = run
        return self._reference

    def a_two_nodes(self) -> Outcome:
        run, port = self.work / "a", free_port()
        agents = [self.agent(f"a{i}", run, nnodes="2", nproc=1, port=port, restarts=0,
                             job=f"a-{os.getpid()}") for i in range(2)]
        try:
            codes = [a.wait(180) for a in agents]
        finally:
            for a in agents:
                a.cleanup()
        if codes != [0, 0] or not finished(run):
            return Outcome(False, f"agents ended with {codes}; see {agents[0].log}")
        if world_size(run) != 2:
            return Outcome(False, f"trained by {world_size(run)} processes, not 2")
        same = same_weights(run, self.reference())
        return Outcome(same, "2 agents x 1 worker finished; weights "
                             + ("equal the one-agent run's" if same else "DIFFER"))

    def b_kill_worker(self) -> Outcome:
        run = self.work / "b"
        agent = self.agent("b", run, nnodes="1", nproc=2, port=free_port(), restarts=2)
        try:
            if not until(lambda: inside_epoch(run), 120):
                return Outcome(False, f"no in-epoch checkpoint came; see {agent.log}")
            killed = step_of(run)
            _signal(agent.workers()[1], signal.SIGKILL)
            rc = agent.wait(180)
        finally:
            agent.cleanup()
        text = agent.text()
        resumed = restarted(text)
        if rc != 0 or not finished(run) or not resumed:
            return Outcome(False, f"rc {rc}, resumed: {resumed}; see {agent.log}")
        same = same_weights(run, self.reference())
        return Outcome(same, f"rank 1 killed after checkpoint {killed}; restarted, resumed; "
                             "weights " + ("equal the reference's" if same else "DIFFER"))

    def c_lose_a_node(self) -> Outcome:
        run, port, job = self.work / "c", free_port(), f"c-{os.getpid()}"
        host = self.agent("c0", run, nnodes="1:2", nproc=1, port=port, restarts=3, job=job,
                          last_call=10)
        other = None
        try:
            # the first agent hosts the rendezvous store; the second joins it
            if not until(lambda: _listening(port), 60):
                return Outcome(False, f"the first agent never listened; see {host.log}")
            other = self.agent("c1", run, nnodes="1:2", nproc=1, port=port, restarts=3,
                               job=job, last_call=10)
            if not until(lambda: inside_epoch(run) and world_size(run) == 2, 150):
                return Outcome(False, f"no checkpoint of 2 processes came; see {host.log}")
            killed = step_of(run)
            other.kill()
            rc = host.wait(200)
        finally:
            host.cleanup()
            if other is not None:
                other.cleanup()
        text = host.text()
        shrunk = "2 -> 1 processes" in text
        if rc != 0 or not finished(run) or not shrunk:
            return Outcome(False, f"rc {rc}, resumed on 1 process: {shrunk}; see {host.log}")
        return Outcome(world_size(run) == 1, f"node 2 killed after checkpoint {killed}; node 1 "
                       "re-rendezvoused alone, resumed (2 -> 1 processes) and finished")

    def d_kill_during_save(self) -> Outcome:
        run = self.work / "d"
        agent = self.agent("d", run, nnodes="1", nproc=2, port=free_port(), restarts=3,
                           extra=("checkpoint_every=1",))
        kills = []
        try:
            # kill while last.pt is replaced, not while the first one is written
            if not until(lambda: inside_epoch(run), 120):
                return Outcome(False, f"no in-epoch checkpoint came; see {agent.log}")
            for _ in range(2):
                temp = until(lambda: next(iter(run.glob(".last.pt.*.tmp")), None), 120,
                             every=0.002)
                writer = agent.workers().get(0)
                if temp is None or writer is None:
                    break
                _signal(writer, signal.SIGKILL)
                torn = temp.exists()  # the kill came while the temporary file was written
                step = step_of(run)
                kills.append((torn, step))
                if step is None:
                    return Outcome(False, f"last.pt unreadable after a kill during its write "
                                          f"(temporary file left: {torn})")
                until(lambda w=writer: w not in agent.workers().values(), 30)
                until(lambda: 0 in agent.workers(), 60)  # the restarted group
            rc = agent.wait(180)
        finally:
            agent.cleanup()
        if len(kills) < 2 or rc != 0 or not finished(run):
            return Outcome(False, f"kills {kills}, rc {rc}; see {agent.log}")
        same = same_weights(run, self.reference())
        during = sum(torn for torn, _ in kills)
        return Outcome(same and during > 0,
                       f"{len(kills)} kills of rank 0, {during} while a temporary file was "
                       f"being written; last.pt loaded after each ({[s for _, s in kills]}); "
                       "finished with the reference's weights" if same else "weights DIFFER")

    def e_hung_worker(self) -> Outcome:
        run = self.work / "e"
        agent = self.agent("e", run, nnodes="1", nproc=2, port=free_port(), restarts=0)
        stopped = None
        try:
            if not until(lambda: inside_epoch(run), 120):
                return Outcome(False, f"no in-epoch checkpoint came; see {agent.log}")
            stopped = agent.workers()[1]
            _signal(stopped, signal.SIGSTOP)
            start = time.monotonic()
            rc = agent.wait(DIST_TIMEOUT + 90)
            waited = time.monotonic() - start
        finally:
            if stopped is not None:
                _signal(stopped, signal.SIGKILL)
            agent.cleanup()
        text = agent.text()
        named = f"rank 1 (pid {stopped} " in text and "stopped answering" in text
        ok = rc not in (0, None) and named and waited < DIST_TIMEOUT + 60
        line = next((s[s.index("error: rank"):] for s in text.splitlines()
                     if "error: rank" in s), "")
        return Outcome(ok, f"rank 1 stopped; the job failed (rc {rc}) after {waited:.0f} s "
                           f"(dist_timeout={DIST_TIMEOUT}): {line[:100]}...")

    def f_preempt_worker(self) -> Outcome:
        run = self.work / "f"
        agent = self.agent("f", run, nnodes="1", nproc=2, port=free_port(), restarts=2)
        try:
            if not until(lambda: step_of(run) is not None and inside_epoch(run), 120):
                return Outcome(False, f"no in-epoch checkpoint came; see {agent.log}")
            _signal(agent.workers()[1], signal.SIGTERM)
            rc = agent.wait(180)
        finally:
            agent.cleanup()
        text = agent.text()
        saved = "stopped at epoch" in text
        resumed = restarted(text)
        if rc != 0 or not finished(run) or not saved or not resumed:
            return Outcome(False, f"rc {rc}, saved {saved}, resumed {resumed}; see {agent.log}")
        same = same_weights(run, self.reference())
        stop = next((s.strip() for s in text.splitlines() if "stopped at epoch" in s), "")
        return Outcome(same, f"SIGTERM -> {stop.split(';')[0]}, last.pt; restarted, resumed; "
                             "weights "
                             + ("equal the reference's" if same else "DIFFER"))


def restarted(log: str) -> bool:
    """Did a restarted worker group resume the run?"""
    return re.search(r"resuming .* \(restart [1-9][0-9]* of torchrun\)", log) is not None


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


SCENARIOS = {"a": ("two agents x 1 worker finish", Scenarios.a_two_nodes),
             "b": ("SIGKILL a worker mid-epoch", Scenarios.b_kill_worker),
             "c": ("--nnodes=1:2, lose a whole agent", Scenarios.c_lose_a_node),
             "d": ("SIGKILL during a checkpoint save", Scenarios.d_kill_during_save),
             "e": ("SIGSTOP a worker (hung)", Scenarios.e_hung_worker),
             "f": ("SIGTERM a worker (preemption)", Scenarios.f_preempt_worker)}


def run_scenario(scenarios: Scenarios, key: str) -> Outcome:
    start = time.monotonic()
    try:
        outcome = SCENARIOS[key][1](scenarios)
    except Exception as err:  # a harness failure is a failed row, not a traceback
        outcome = Outcome(False, f"{type(err).__name__}: {err}")
    outcome.seconds = time.monotonic() - start
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="".join(SCENARIOS), help="scenario letters, e.g. ab")
    parser.add_argument("--work", type=Path, default=Path("/tmp/alexnet-elastic-check"),
                        help="where data, runs and logs go")
    args = parser.parse_args(argv)
    scenarios = Scenarios(args.work)
    rows = []
    if set(args.only) & set("abdf"):  # their runs must end with the weights of this one
        start = time.monotonic()
        scenarios.reference()
        print(f"-  reference run (one agent, 2 workers, left alone): "
              f"{time.monotonic() - start:.0f} s", flush=True)
    for key in [k for k in args.only if k in SCENARIOS]:
        outcome = run_scenario(scenarios, key)
        rows.append((key, SCENARIOS[key][0], outcome))
        print(f"{key}  {'pass' if outcome.ok else 'FAIL'}  {outcome.seconds:5.0f} s  "
              f"{SCENARIOS[key][0]}", flush=True)
    print(f"\n{'':2}{'scenario':<36}{'result':<8}{'seconds':>8}  detail")
    for key, title, o in rows:
        print(f"{key} {title:<36}{'pass' if o.ok else 'FAIL':<8}{o.seconds:>8.0f}  {o.detail}")
    print(f"\nlogs and runs in {args.work}")
    return 0 if all(o.ok for _, _, o in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

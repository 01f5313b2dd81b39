"""Training under torchrun's elastic agent: what (re)started workers do with the run folder,
the sample order when the world size changes, checkpoints inside an epoch; and (slow) the fault
scenarios of benchmarks/elastic_check.py with real torchrun agents on 127.0.0.1."""

import sys
from pathlib import Path

import pytest
import torch

from alexnet.train.distributed import Dist
from alexnet.train.elastic import plan_start
from alexnet.train.preemption import CheckpointClock
from alexnet.train.run_config import RunConfig, dump_config, resolve_config
from alexnet.train.training_run import RESUMABLE
from alexnet.weights.checkpoint import save_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import elastic_check  # noqa: E402

RESUMABLE_KEYS = tuple(RESUMABLE)


def _cfg(**overrides) -> RunConfig:
    recipe = {"recipe": "test", "model": {"name": "cifar4", "image_size": 24},
              "data": {"source": "/nowhere"}, "epochs": 2, "quick": False, "device": "cpu"}
    return resolve_config(recipe, overrides)


def _checkpoint(run: Path, cfg: RunConfig, *, job: str | None, epoch: int = 0, batch: int = 5,
                world_size: int = 2) -> None:
    stored = dict(cfg.to_dict(), distributed={"world_size": world_size, "torchrun_job": job})
    save_checkpoint({"config": stored, "epoch": epoch, "batch": batch}, run / "last.pt")


def test_an_empty_folder_starts_fresh(tmp_path):
    plan = plan_start(_cfg(), tmp_path / "run", force=False, job="j", resumable=RESUMABLE_KEYS)
    assert (plan.action, plan.force, plan.clear) == ("fresh", False, False)


def test_a_checkpoint_of_this_run_is_resumed_by_a_restart_or_a_new_job(tmp_path):
    _checkpoint(tmp_path, _cfg(), job="j", epoch=1, batch=5)
    for job in ("j", "next-job"):  # a torchrun restart; the same command resubmitted
        plan = plan_start(_cfg(), tmp_path, force=False, job=job, resumable=RESUMABLE_KEYS)
        assert (plan.action, plan.epoch, plan.batch, plan.world_size) == ("resume", 1, 5, 2)
    # keys a resume may change do not make it another run
    plan = plan_start(_cfg(epochs=5, log_every=7), tmp_path, force=False, job="k",
                      resumable=RESUMABLE_KEYS)
    assert plan.action == "resume"


def test_force_starts_over_once_per_job_and_restarts_resume(tmp_path):
    _checkpoint(tmp_path, _cfg(), job="old")
    assert plan_start(_cfg(), tmp_path, force=True, job="new",
                      resumable=RESUMABLE_KEYS).force
    _checkpoint(tmp_path, _cfg(), job="new")  # what the forced job wrote before a restart
    plan = plan_start(_cfg(), tmp_path, force=True, job="new", resumable=RESUMABLE_KEYS)
    assert plan.action == "resume"


def test_another_runs_checkpoint_is_refused_naming_the_difference(tmp_path):
    _checkpoint(tmp_path, _cfg(), job="j")
    plan = plan_start(_cfg(**{"optim.lr": 0.5}), tmp_path, force=False, job="j",
                      resumable=RESUMABLE_KEYS)
    assert plan.action == "refuse"
    assert "optim.lr=0.5 here, 0.01 there" in plan.message and "--force" in plan.message


def test_a_finished_run_has_nothing_to_do(tmp_path):
    _checkpoint(tmp_path, _cfg(), job="j", epoch=2, batch=0)
    assert plan_start(_cfg(), tmp_path, force=False, job="j",
                      resumable=RESUMABLE_KEYS).action == "done"


def test_a_start_stopped_before_its_first_checkpoint_starts_again_in_place(tmp_path):
    (tmp_path / "config.yaml").write_text(dump_config(
        dict(_cfg().to_dict(), distributed={"world_size": 2, "torchrun_job": "j"})))
    plan = plan_start(_cfg(), tmp_path, force=False, job="j", resumable=RESUMABLE_KEYS)
    assert (plan.action, plan.clear) == ("fresh", True)
    other = plan_start(_cfg(seed=3), tmp_path, force=False, job="j", resumable=RESUMABLE_KEYS)
    assert (other.action, other.clear) == ("fresh", False)  # RunFolder refuses it


@pytest.mark.parametrize("old,new", [(1, 2), (2, 1), (4, 2), (2, 4)])
def test_another_world_size_keeps_each_global_batch_and_the_rest_of_the_epoch(old, new):
    """Global batch b holds the same images whatever the number of processes: resuming at
    batch b with another world size trains the epoch's remaining images, none twice, none
    skipped (data/loaders.py: one permutation, rank r takes every world_size-th image)."""
    from alexnet.data.loaders import TrainLoader

    labels, batch, resume_at = torch.zeros(203, dtype=torch.int64), 8, 9

    def batches(world: int, start: int) -> list[set[int]]:
        loaders = [TrainLoader(None, labels, None, batch // world, torch.device("cpu"), 7, r,
                               world) for r in range(world)]
        steps = len(loaders[0])
        orders = [ld.order(3) for ld in loaders]
        per = batch // world
        return [set().union(*(o[b * per:(b + 1) * per].tolist() for o in orders))
                for b in range(start, steps)]

    before = batches(old, 0)[:resume_at]
    after = batches(new, resume_at)
    assert len(before) + len(after) == len(batches(old, 0)) == 203 // batch
    seen = [i for b in before + after for i in b]
    assert len(seen) == len(set(seen)) == (203 // batch) * batch
    assert after == batches(old, 0)[resume_at:]


def test_the_checkpoint_clock_counts_steps_and_minutes(monkeypatch):
    clock = CheckpointClock(3, None, Dist())
    assert [s for s in range(1, 10) if clock.due(s, window=1)] == [3, 6, 9]
    now = [100.0]
    monkeypatch.setattr("alexnet.train.preemption.time.monotonic", lambda: now[0])
    clock = CheckpointClock(None, 1.0, Dist())
    assert not clock.due(1, window=0)
    now[0] += 61
    assert not clock.due(2, window=1)  # read only when the ranks sync (a window's end)
    assert clock.due(3, window=0) and not clock.due(4, window=0)


# ---------------------------------------------------------------- real torchrun agents


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    return elastic_check.Scenarios(tmp_path_factory.mktemp("elastic"))


@pytest.mark.slow  # each: one or two torchrun jobs of 2 processes, 20-70 s on 2 cores
@pytest.mark.parametrize("key", list(elastic_check.SCENARIOS))
def test_fault_scenario(scenarios, key):
    outcome = elastic_check.SCENARIOS[key][1](scenarios)
    assert outcome.ok, outcome.detail

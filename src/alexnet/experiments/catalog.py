"""The paper's experiments by name (`alexnet experiment list`)."""

from __future__ import annotations

from alexnet.errors import ConfigError
from alexnet.experiments import (
    depth,
    dropout,
    ensemble,
    kernels,
    lrn,
    lrn_cifar,
    overlap,
    relu_tanh,
    retrieval,
    towers,
    views,
)
from alexnet.experiments.spec import Experiment

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    relu_tanh.EXPERIMENT, towers.EXPERIMENT, lrn_cifar.EXPERIMENT, lrn.EXPERIMENT,
    overlap.EXPERIMENT, dropout.EXPERIMENT, views.EXPERIMENT, kernels.EXPERIMENT,
    retrieval.EXPERIMENT, ensemble.EXPERIMENT, depth.EXPERIMENT)}


def list_experiments() -> list[str]:
    """Names in the paper's order."""
    return list(EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    """The experiment `name`; an unknown name lists the valid ones."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown experiment {name!r}; valid experiments: "
                          f"{', '.join(EXPERIMENTS)} (see `alexnet experiment list`)") from None

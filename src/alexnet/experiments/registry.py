"""The paper's experiments by name (`alexnet experiment list`)."""

from __future__ import annotations

from alexnet.errors import ConfigError
from alexnet.experiments import ensemble, lrn_cifar, relu_tanh, views
from alexnet.experiments.spec import Experiment

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    relu_tanh.EXPERIMENT, lrn_cifar.EXPERIMENT, views.EXPERIMENT, ensemble.EXPERIMENT)}


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

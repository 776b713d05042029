"""The training defaults have one home, TrainConfig: the API's signatures, the CLI's options and the sweep
spec's defaults must all equal it, and the experiments are registered once."""
import inspect

import pytest

import fxtrain
from fxtrain.cli import cli
from fxtrain.experiments.registry import EXPERIMENTS
from fxtrain.experiments.spec import SETTINGS
from fxtrain.training.config import TRAIN_DEFAULTS, TrainConfig


@pytest.mark.parametrize("function", [fxtrain.train, fxtrain.simulate, fxtrain.compare])
def test_the_api_signatures_repeat_trainconfigs_defaults(function):
    params = inspect.signature(function).parameters
    # compare's bits is a list of widths to compare, not one run's width
    shared = [k for k in TRAIN_DEFAULTS if k in params and not (function is fxtrain.compare and k == "bits")]
    assert shared, function
    assert {k: params[k].default for k in shared} == {k: TRAIN_DEFAULTS[k] for k in shared}


@pytest.mark.parametrize("command", ["train", "simulate", "compare"])
def test_the_cli_options_take_trainconfigs_defaults(command):
    options = {p.name: p.default for p in cli.commands[command].params}
    shared = [k for k in TRAIN_DEFAULTS if k in options]
    assert len(shared) >= 6
    assert {k: options[k] for k in shared} == {k: TRAIN_DEFAULTS[k] for k in shared}


# TrainConfig's fields a sweep spec does not offer (a cell starts from the generator): named, so that a
# new field is either offered or listed here
NOT_IN_SWEEPS = {"init"}


def test_the_sweep_specs_defaults_are_trainconfigs():
    offered = [k for k in TRAIN_DEFAULTS if k not in NOT_IN_SWEEPS]
    assert {k: SETTINGS[k][2] for k in offered} == {**{k: TRAIN_DEFAULTS[k] for k in offered}, "arch": "default"}
    assert not NOT_IN_SWEEPS & set(SETTINGS) and all(TRAIN_DEFAULTS[k] is None for k in NOT_IN_SWEEPS)
    assert TrainConfig() == TrainConfig(**TRAIN_DEFAULTS)


def test_experiments_are_registered_once_and_every_one_is_runnable():
    from fxtrain.experiments.report import experiment_module
    choices = next(p for p in cli.commands["experiment"].params if p.name == "name").type.choices
    assert list(choices) == list(EXPERIMENTS)
    for name in EXPERIMENTS:
        mod = experiment_module(name)
        assert callable(mod.plan) and callable(mod.analyze)
        assert name in cli.commands["experiment"].help

"""Every option offered in conf/ composes and builds the object it names."""

import pytest
import torch
from hydra.utils import instantiate

from conftest import REPO

GROUPS = ("data", "model", "optimizer", "trainer", "logger", "callbacks", "experiment")


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (REPO / "conf" / group).glob("*.yaml"))


def build(cfg):
    """Instantiate what train.py instantiates: data, model, logger, callbacks and trainer."""
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, n_features=datamodule.n_features, _convert_="all")
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(callback) for callback in (cfg.get("callbacks") or {}).values()]
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
    return datamodule, model, trainer


@pytest.mark.parametrize("group, option", [(group, option) for group in GROUPS for option in options(group)])
def test_every_config_option_composes_and_instantiates(compose, diabetes_dir, tiny_csv, group, option):
    if group == "trainer" and option == "gpu" and not torch.cuda.is_available():
        pytest.skip("trainer=gpu needs a CUDA device")
    overrides = [f"{group}={option}"] + ([f"data.path={tiny_csv}"] if (group, option) == ("data", "csv") else [])

    datamodule, model, trainer = build(compose(*overrides))

    assert trainer.max_epochs == compose(*overrides).epochs
    model.configure_optimizers()


def test_every_group_offers_options():
    assert all(options(group) for group in GROUPS)


def test_top_level_keys_reach_the_objects(compose, diabetes_dir):
    datamodule, model, trainer = build(compose("lr=0.1", "epochs=300", "seed=7"))

    assert model.hparams.optimizer["lr"] == 0.1
    assert trainer.max_epochs == 300
    assert datamodule.hparams.seed == 7


def test_trainer_keys_reach_lightning(compose, diabetes_dir):
    _, _, trainer = build(compose("trainer=ddp_cpu"))

    assert type(trainer.strategy).__name__ == "DDPStrategy"
    assert trainer.num_devices == 2
    assert trainer.strategy._process_group_backend == "gloo"


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "lbfgs"])
def test_optimizer_option_builds_that_torch_optimizer(compose, diabetes_dir, name):
    _, model, _ = build(compose(f"optimizer={name}", "lr=0.05"))

    optimizer = model.configure_optimizers()

    assert type(optimizer).__name__.lower() == name
    assert optimizer.defaults["lr"] == 0.05

"""Every option offered in conf/ composes, passes the schema, and builds what it names as train.py builds it."""

import pytest
import torch

from conftest import REPO, sampled
from logreg.checking import check_config
from logreg.checkpoints import AtomicCheckpointIO
from logreg.training import build_datamodule, build_model, build_trainer

GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "debug", "experiment")


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (REPO / "conf" / group).glob("*.yaml"))


def build(cfg, tmp_path):
    """What train.py builds from a config: the DataModule, the model and the Trainer (with logger and callbacks)."""
    cfg = check_config(cfg)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    trainer = build_trainer(cfg, tmp_path, tmp_path, AtomicCheckpointIO(), datamodule.has_rows("val"))
    return datamodule, model, trainer


@sampled("group, option", [(group, option) for group in GROUPS for option in options(group)], every=3)
def test_every_config_option_composes_and_instantiates(compose, diabetes_dir, tiny_csv, tmp_path, group, option):
    if group == "trainer" and option == "gpu" and not torch.cuda.is_available():
        pytest.skip("trainer=gpu needs a CUDA device")
    overrides = [f"{group}={option}"] + ([f"data.path={tiny_csv}"] if (group, option) == ("data", "csv") else [])
    if (group, option) == ("optimizer", "newton"):  # float64 only: refused otherwise (test_newton.py)
        overrides.append("trainer.precision=64-true")
    cfg = compose(*overrides)

    datamodule, model, trainer = build(cfg, tmp_path)

    assert trainer.max_epochs == (cfg.trainer.max_epochs if not trainer.fast_dev_run else 1)
    model.trainer = trainer
    assert model.configure_optimizers()


def test_every_group_offers_options():
    assert all(options(group) for group in GROUPS)


def test_top_level_keys_reach_the_objects(compose, diabetes_dir, tmp_path):
    datamodule, model, trainer = build(compose("lr=0.1", "epochs=300", "seed=7"), tmp_path)

    assert model.hparams.optimizer["lr"] == 0.1
    assert trainer.max_epochs == 300
    assert datamodule.hparams.seed == 7


def test_trainer_keys_reach_lightning(compose, diabetes_dir, tmp_path):
    _, _, trainer = build(compose("trainer=ddp_cpu"), tmp_path)

    assert type(trainer.strategy).__name__ == "DDPStrategy"
    assert trainer.num_devices == 2
    assert trainer.strategy.process_group_backend == "gloo"


def test_a_trainer_argument_lightning_refuses_is_named_in_one_line(compose, diabetes_dir, tmp_path):
    from logreg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^trainer\.strategy=bogus: .*strategy"):
        build(compose("trainer.strategy=bogus"), tmp_path)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "lbfgs"])
def test_optimizer_option_builds_that_torch_optimizer(compose, diabetes_dir, tmp_path, name):
    _, model, _ = build(compose(f"optimizer={name}", "lr=0.05"), tmp_path)

    optimizer = model.configure_optimizers()

    assert type(optimizer).__name__.lower() == name
    assert optimizer.defaults["lr"] == 0.05


@pytest.mark.parametrize(
    "name, expected", [("cosine", "CosineAnnealingLR"), ("step", "StepLR"), ("plateau", "ReduceLROnPlateau")]
)
def test_scheduler_option_builds_that_torch_scheduler(compose, diabetes_dir, tmp_path, name, expected):
    _, model, _ = build(compose(f"scheduler={name}"), tmp_path)

    assert type(model.configure_optimizers()["lr_scheduler"]).__name__ == expected


def _schema_default(field):
    import dataclasses

    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else None


def _typed_yaml_nodes():
    """(file, node it sets, the schema dataclass typing that node) for every config file: those that extend a schema
    node (`/schema/<group>/<name>@...` in their defaults), the trainer options (TrainerConfig) and the model's."""
    import yaml

    from logreg import schema

    for path in sorted((REPO / "conf").rglob("*.yaml")):
        relative = path.relative_to(REPO / "conf")
        document = yaml.safe_load(path.read_text()) or {}
        if relative.parts[0] == "trainer":
            yield relative, document, schema.TrainerConfig
        elif relative.parts[0] == "model":
            yield relative, document, schema.ModelConfig
        for entry in document.get("defaults", []):
            if isinstance(entry, str) and entry.startswith("/schema/") and entry.count("/") == 3:
                reference, _, where = entry.partition("@")
                _, _, group, name = reference.split("/")
                yield (
                    relative,
                    document if where == "_here_" else document.get(where) or {},
                    schema.SCHEMA_GROUPS[group][name],
                )


@pytest.mark.parametrize(
    "relative, node, dataclass_",
    [pytest.param(*case, id=f"{case[0]}:{case[2].__name__}") for case in _typed_yaml_nodes()],
)
def test_a_config_file_sets_only_what_its_schema_does_not_already_say(relative, node, dataclass_):
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(dataclass_)}
    repeated = [key for key, value in node.items() if key in fields and value == _schema_default(fields[key])]
    assert not repeated, f"conf/{relative} repeats {dataclass_.__name__}'s defaults for {repeated}: set them there only"

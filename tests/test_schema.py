"""The typed config schema: every bad value, unknown key or option ends in one line of a documented error type,
naming the key, before Lightning is imported; and the schema stays in step with the constructors it configures."""

import dataclasses
import importlib
import inspect
import os
import random
import re
import subprocess
import sys

import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from conftest import REPO, sampled
from logreg import checking, schema
from logreg.checking import check_config
from logreg.errors import USER_ERRORS, ConfigError, as_user_error
from logreg.rules import rule_of


def refusal(compose, *overrides: str, config_name: str = "train", sweep: bool = False) -> str | None:
    """The one-line message with which `python <script>.py *overrides` refuses the config, or None if it is accepted."""
    try:
        check_config(compose(*overrides, config_name=config_name), sweep=sweep)
    except Exception as error:
        user_error = as_user_error(error)
        assert user_error is not None, f"{overrides}: not a user error: {error!r}"
        assert isinstance(user_error, USER_ERRORS)
        message = str(user_error)
        assert "\n" not in message
        return message
    return None


# The cases, and more of each kind: (overrides, the message's start).
REFUSED = [
    ("seed=-1", r"seed=-1: expected a whole number in \[0, 4294967295\]"),
    ("seed=abc", r"seed=abc: expected a whole number"),
    ("seed=1.5", r"seed=1\.5: expected a whole number"),
    ("seed=4294967296", r"seed=4294967296: expected a whole number in"),
    ("data.header=maybe", r"data\.header=maybe: expected true or false or null"),
    ("data.label_column=1.5", r"data\.label_column=1\.5: expected a column number"),
    ("data.label_column=0", r"data\.label_column=0: expected a column number counting from 1"),
    ("data.label_column=true", r"data\.label_column=true: expected a column number"),
    ("data.batch_size=1e9", r"data\.batch_size=1e9: expected a whole number or null"),
    ("data.batch_size=abc", r"data\.batch_size=abc: expected a whole number or null"),
    ("data.batch_size=0", r"data\.batch_size=0: expected a positive number of rows"),
    ("data=csv", r"data\.path: a value is required"),
    ("data.test_split=train", r"data\.test_split: renamed data\.test_on \(0\.2\); set data\.test_on=\.\.\. instead"),
    ("trainer.use_distributed_sampler=false", r"trainer\.use_distributed_sampler: no such key"),
    ("data.val_fraction=1.5", r"data\.val_fraction=1\.5: expected a fraction in \[0, 1\)"),
    (
        "data.val_fraction=0.6 data.test_fraction=0.4",
        r"data\.val_fraction=0\.6: expected val_fraction \+ test_fraction",
    ),
    ("data.standardize=maybe", r"data\.standardize=maybe: expected true or false"),
    ("data.encoding=klingon", r"data\.encoding=klingon: expected a text encoding"),
    ("data.sha256=abc", r"data\.sha256=abc: expected 64 lowercase hexadecimal digits"),
    ("data.test_on=everything", r"data\.test_on=everything: expected one of train, val, test"),
    ("model.optimizer.momentum=-1", r"model\.optimizer\.momentum=-1\.0: expected a number >= 0"),
    ("optimizer=adam model.optimizer.betas=[0.9,1.5]", r"model\.optimizer\.betas=\[0\.9, 1\.5\]: expected two numbers"),
    ("optimizer=lbfgs model.optimizer.max_iter=0", r"model\.optimizer\.max_iter=0: expected a whole number >= 1"),
    ("model.threshold=2", r"model\.threshold=2\.0: expected a probability strictly between 0 and 1"),
    ("model.pos_weight=-1", r"model\.pos_weight=-1: expected a positive number"),
    ("model.tune_threshold=accuracy", r"model\.tune_threshold=accuracy: expected null, or the criterion"),
    ("model.gradient=magic", r"model\.gradient=magic: expected analytic"),
    ("monitor=val/nosuch", r"monitor=val/nosuch: expected a metric logged while fitting: train/loss"),
    (
        "experiment=lab05 monitor=val/loss",
        r"monitor=val/loss: expected a metric logged while fitting \(data\.val_fraction=0: no validation rows\): ",
    ),
    ("trainer.devices=0", r"trainer\.devices=0: expected a number of devices >= 1"),
    ("trainer.precision=bogus", r"trainer\.precision=bogus: expected one of 32-true"),
    ("trainer.precision=16-mixed", r"trainer\.precision=16-mixed: expected one of 32-true"),
    ("trainer.max_epochs=0", r"trainer\.max_epochs=0: expected a whole number of epochs >= 1"),
    ("trainer.gradient_clip_val=1", r"trainer\.gradient_clip_val=1\.0: expected null: the model makes its own"),
    ("trainer.accumulate_grad_batches=2", r"trainer\.accumulate_grad_batches=2: expected 1"),
    ("trainer.num_nodes=0", r"trainer\.num_nodes=0: expected a whole number >= 1"),
    ("trainer.profiler=fancy", r"trainer\.profiler=fancy: expected simple, advanced, pytorch, a profiler config"),
    ("epochs=true", r"epochs=true: expected a whole number"),
    ("epochs=0", r"epochs=0: expected a whole number of epochs >= 1"),
    ("lr=0", r"lr=0\.0: expected a positive number"),
    ("lr=nan", r"lr=nan: expected a positive number"),
    ("lr=-1", r"lr=-1\.0: expected a positive number"),
    ("lr=1e39", r"lr=1e\+39: expected a positive number|model\.optimizer\.lr=1e\+39: expected a positive float32"),
    ("threads=0", r"threads=0: expected a number of CPU threads >= 1"),
    ("ckpt_path=/no/such.ckpt", r"ckpt_path=/no/such\.ckpt: expected an existing checkpoint file"),
    ("cv.folds=1", r"cv\.folds=1: expected 0 \(no cross-validation\) or a number of folds >= 2"),
    ("callbacks.checkpoint.mode=sideways", r"callbacks\.checkpoint\.mode=sideways: expected min or max"),
    (
        "callbacks=early_stopping callbacks.early_stopping.patience=-1",
        r"callbacks\.early_stopping\.patience=-1: expected a whole number of epochs >= 0",
    ),
    ("+unknown.key=1", r"unknown: no such key; TrainConfig has: "),
    ("+model.optimizer.betas=[0.9,0.99]", r"model\.optimizer\.betas: no such key; SGDConfig has: "),
    ("+trainer.bogus=1", r"trainer\.bogus: no such key; TrainerConfig has: "),
    ("+callbacks.x=1", r"callbacks\.x: expected a callback config with a _target_"),
    ("optimizer=adam model.optimizer.momentum=0.9", r"model\.optimizer\.momentum: no such key; AdamConfig has: "),
    ("lrr=1", r"lrr: no such key; did you mean lr\? \(TrainConfig has: "),
    ("epoch=5", r"epoch: no such key; did you mean epochs\? \(TrainConfig has: "),
    ("trainer.max_epoch=5", r"trainer\.max_epoch: no such key; did you mean trainer\.max_epochs\? "),
    ("+data.val_fration=0.2", r"data\.val_fration: no such key; did you mean data\.val_fraction\? "),
    ("trainer.strategy=ddp_spawn", r"trainer\.strategy=ddp_spawn: expected ddp \(trainer=ddp or ddp_cpu\)"),
    ("trainer.strategy=ddp_notebook", r"trainer\.strategy=ddp_notebook: expected ddp "),
    ("trainer=ddp_cpu +trainer.strategy.start_method=spawn", r"trainer\.strategy=.*: expected ddp "),
    ("optimizer.momentum=0.9", r"optimizer: no such key; did you mean model\.optimizer\? \(TrainConfig has: "),
    ("+scheduler.gamma=0.5", r"scheduler: no such key; did you mean model\.scheduler\? \(TrainConfig has: "),
    ("optimizer=rmsprop", r"optimizer=rmsprop: no such option; optimizer offers: adam, adamw, lbfgs, newton, sgd"),
    ("data=iris", r"data=iris: no such option; data offers: breast_cancer, csv, diabetes"),
    ("trainer=tpu", r"trainer=tpu: no such option; trainer offers: cpu, ddp, ddp_cpu, default, gpu"),
    ("scheduler=exponential", r"scheduler=exponential: no such option; scheduler offers: cosine, none, plateau, step"),
    ("scheduler=step model.scheduler.gamma=0", r"model\.scheduler\.gamma=0\.0: expected a factor in \(0, 1\]"),
    ("lr=[", r"could not read the command line"),
]


@sampled("overrides, message", REFUSED, every=4, ids=[case for case, _ in REFUSED])
def test_a_bad_value_is_refused_in_one_line_naming_the_key(compose, diabetes_dir, overrides, message):
    refused = refusal(compose, *overrides.split())

    assert refused is not None and re.match(message, refused), refused


@sampled(
    "overrides",
    [
        "",
        "experiment=lab05",
        "experiment=optimum",
        "data=breast_cancer",
        "data=csv data.path=x.csv",
        "optimizer=adam",
        "optimizer=lbfgs",
        "scheduler=cosine",
        "scheduler=step",
        "scheduler=plateau",
        "logger=csv",
        "logger=none",
        "logger=mlflow",
        "callbacks=none",
        "callbacks=early_stopping",
        "debug=fast_dev_run",
        "debug=overfit",
        "debug=limit",
        "debug=profiler",
        "trainer=ddp_cpu",
        "trainer=ddp",
        "model.pos_weight=balanced",
        "model.tune_threshold=f1",
        "cv.folds=5 optimized_metric=cv/val/loss",
        "monitor=val/auroc",
        "data.label_column=outcome",
        "data.label_column=-2",
        "data.test_on=train",
    ],
)
def test_every_offered_option_and_documented_value_is_accepted(compose, diabetes_dir, overrides):
    assert refusal(compose, *overrides.split()) is None


@sampled(
    "overrides, message",
    [
        ("optimized_metric=train/loss", r"optimized_metric=train/loss: expected a held-out metric: val/loss"),
        ("optimized_metric=test/acc", r"optimized_metric=test/acc: expected a held-out metric"),
        ("experiment=lab05", r"optimized_metric=val/loss: expected a held-out metric, but this run has none"),
        # a cv.folds run's results are cv/val/* (the folds' mean and spread): its val/loss would be NaN to the sweeper
        ("cv.folds=3", r"optimized_metric=val/loss: expected a held-out metric: cv/val/loss, cv/val/loss_std"),
    ],
    every=2,
)
def test_a_sweep_may_only_optimize_a_held_out_metric(compose, diabetes_dir, overrides, message):
    assert re.match(message, refusal(compose, *overrides.split(), sweep=True) or "")
    assert refusal(compose, "optimized_metric=cv/val/auroc", "cv.folds=3", sweep=True) is None


@pytest.mark.parametrize(
    "config_name, overrides, message",
    [
        ("eval", ["ckpt_path=/no/such.ckpt"], r"ckpt_path=/no/such\.ckpt: expected an existing checkpoint file"),
        ("eval", [], r"ckpt_path: a value is required"),
        ("eval", ["ckpt_path=x", "split=all"], r"ckpt_path=x: expected an existing"),
        ("eval", ["ckpt_path=x", "data.val_fraction=0.5"], r"data\.val_fraction: no such key; DataLocation has"),
        ("predict", ["ckpt_path=x", "input=y", "threshold=1"], r"ckpt_path=x: expected an existing"),
        ("predict", ["input=y"], r"ckpt_path: a value is required"),
        ("export", ["ckpt_path=x", "format=tflite"], r"ckpt_path=x: expected an existing"),
        (
            "export",
            ["ckpt_path=x", "+overwrite_all=true"],
            r"overwrite_all: no such key; did you mean overwrite\? \(ExportConfig has",
        ),
    ],
)
def test_the_other_entry_scripts_check_their_keys_too(compose, config_name, overrides, message):
    assert re.match(message, refusal(compose, *overrides, config_name=config_name) or "")


def test_eval_takes_the_data_location_keys_without_a_plus(compose, tmp_path):
    checkpoint = tmp_path / "x.ckpt"
    checkpoint.touch()

    cfg = compose(f"ckpt_path={checkpoint}", "data.data_dir=/elsewhere", "split=val", config_name="eval")

    cfg = check_config(cfg)
    assert cfg.data.data_dir == "/elsewhere"


def test_checkpoint_and_early_stopping_mode_follow_the_monitored_metric(compose, diabetes_dir):
    cfg = compose("callbacks=early_stopping", "monitor=val/auroc")

    assert cfg.callbacks.checkpoint.mode == cfg.callbacks.early_stopping.mode == "max"
    assert compose("monitor=val/brier").callbacks.checkpoint.mode == "min"


# ----------------------------------------------------------------------------------------------------------- fuzz

JUNK = [
    "abc",
    "",
    "-1",
    "0",
    "1.5",
    "1e400",
    "nan",
    "-inf",
    "true",
    "maybe",
    "[1,2]",
    "{a:1}",
    "null",
    "1e9",
    "'1'",
    "-0.0",
    "99999999999999999999",
    "x" * 300,
    "é",
    "0x10",
]


def leaf_keys(config: dict, prefix: str = "") -> list[str]:
    """Every settable key of a config (as a plain dict, interpolations unresolved), callbacks and _target_ aside."""
    keys = []
    for key, value in config.items():
        if key == "hydra" or (prefix == "" and key == "callbacks") or key == "_target_":
            continue
        keys += leaf_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def fuzz_overrides(count: int, seed: int, tmp_path) -> dict[str, int]:
    """`count` seeded random override lists of every key, group and made-up key, each composed and checked: each is
    accepted, or refused in one line by a documented UserError; never another exception. Returns the outcomes."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    rng = random.Random(seed)
    groups = {
        "data": ["diabetes", "csv", "breast_cancer", "nope"],
        "optimizer": ["sgd", "adam", "lbfgs", "rms"],
        "trainer": ["cpu", "ddp_cpu", "tpu"],
        "logger": ["csv", "none", "mlflow", "wandb"],
        "scheduler": ["none", "cosine", "plateau", "x"],
        "callbacks": ["none", "early_stopping", "all"],
    }
    outcomes = {"accepted": 0, "refused": 0}
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):  # once: composing is the cost
        keys = sorted(leaf_keys(OmegaConf.to_container(compose("train"), resolve=False)))
        for _ in range(count):
            overrides = []
            for _ in range(rng.randint(1, 3)):
                kind = rng.random()
                if kind < 0.7:
                    overrides.append(f"{rng.choice(keys)}={rng.choice(JUNK)}")
                elif kind < 0.85:
                    group = rng.choice(sorted(groups))
                    overrides.append(f"{group}={rng.choice(groups[group])}")
                else:
                    made_up = rng.choice(["x", "data", "model", "trainer.nope", "cv"])
                    overrides.append(f"+{made_up}.{rng.choice(keys)}=1")
            try:
                cfg = compose("train", overrides=overrides, return_hydra_config=True)
                with open_dict(cfg):
                    cfg.hydra.runtime.output_dir = str(tmp_path)
                    cfg.hydra.job.num = 0
                HydraConfig.instance().set_config(cfg)
                cfg = check_config(cfg)
                outcomes["accepted"] += 1
            except Exception as error:  # composing or checking: a user error, in one line, or a bug
                user_error = as_user_error(error)
                assert user_error is not None, f"{overrides}: not a user error: {error!r}"
                assert isinstance(user_error, USER_ERRORS) and "\n" not in str(user_error), overrides
                outcomes["refused"] += 1
    return outcomes


def test_fuzzed_overrides_end_in_one_line_of_a_documented_error_type_or_run(diabetes_dir, tmp_path):
    """Twenty compositions for the edit-test loop (the slow test below runs 150)."""
    outcomes = fuzz_overrides(20, 20261201, tmp_path)
    assert outcomes["refused"] > 10 and outcomes["accepted"] >= 1, outcomes


@pytest.mark.slow
def test_many_fuzzed_overrides_end_in_one_line_of_a_documented_error_type_or_run(diabetes_dir, tmp_path):
    outcomes = fuzz_overrides(150, 20261125, tmp_path)
    assert outcomes["refused"] > 90 and outcomes["accepted"] > 5, outcomes


# ------------------------------------------------------------------------------------------------ the command line


@sampled(
    "script, overrides, message",
    [
        ("train.py", ["seed=-1"], "error: seed=-1: expected a whole number in [0, 4294967295]"),
        (
            "train.py",
            ["optimizer=rmsprop"],
            "error: optimizer=rmsprop: no such option; optimizer offers: adam, adamw, lbfgs, newton, sgd",
        ),
        ("train.py", ["+unknown.key=1"], None),
        (
            "eval.py",
            ["ckpt_path=/no/such.ckpt"],
            "error: ckpt_path=/no/such.ckpt: expected an existing checkpoint file "
            "(logs/runs/<run>/checkpoints/last.ckpt)",
        ),
    ],
    every=2,
)
def test_the_command_line_says_one_line_before_importing_lightning(tmp_path, script, overrides, message):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO / script), *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0] == message if message else lines[0].startswith("error: ")
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in imported and "lightning" not in imported
    assert not list(tmp_path.iterdir())  # nothing written


# ------------------------------------------------------------------------------ the schema mirrors the constructors


def parameters(target) -> dict:
    return {name: p for name, p in inspect.signature(target).parameters.items() if name not in ("self", "params")}


@pytest.mark.parametrize(
    "node, target",
    [
        (schema.DataConfig, "logreg.data.TabularDataModule"),
        (schema.CSVDataConfig, "logreg.data.CSVDataModule"),
        (schema.ModelConfig, "logreg.model.LogisticRegression"),
        (schema.TrainerConfig, "lightning.pytorch.Trainer"),
        (schema.TensorBoardConfig, "lightning.pytorch.loggers.TensorBoardLogger"),
        (schema.CSVLoggerConfig, "lightning.pytorch.loggers.CSVLogger"),
        (schema.MLflowConfig, "lightning.pytorch.loggers.MLFlowLogger"),
        (schema.CheckpointConfig, "lightning.pytorch.callbacks.ModelCheckpoint"),
        (schema.EarlyStoppingConfig, "lightning.pytorch.callbacks.EarlyStopping"),
        (schema.PlotsConfig, "logreg.plots.EvaluationPlots"),
    ],
)
def test_every_schema_key_is_an_argument_of_what_it_builds(node, target):
    built = get_class(target)
    arguments = parameters(built.__init__)
    if "split_options" in arguments:  # CSVDataModule passes the split options on to TabularDataModule
        arguments |= parameters(get_class("logreg.data.TabularDataModule").__init__)
    keys = {f.name for f in dataclasses.fields(node)} - {"_target_"}

    assert keys <= set(arguments), keys - set(arguments)
    assert node._target_ == target or get_class(node._target_) is built


@pytest.mark.parametrize("name", sorted(schema.OPTIMIZERS))
def test_every_optimizer_key_is_an_argument_of_its_torch_optimizer(name):
    from logreg.model import TORCH_OPTIMIZERS

    keys = {f.name for f in dataclasses.fields(schema.OPTIMIZERS[name])} - {"name"}

    assert keys <= set(parameters(TORCH_OPTIMIZERS[name])), keys - set(parameters(TORCH_OPTIMIZERS[name]))


@pytest.mark.parametrize("name", sorted(schema.SCHEDULERS))
def test_every_scheduler_key_is_an_argument_of_its_torch_scheduler(name):
    from logreg.model import TORCH_SCHEDULERS

    keys = {f.name for f in dataclasses.fields(schema.SCHEDULERS[name])} - {"name", "monitor"}

    assert keys <= set(parameters(TORCH_SCHEDULERS[name])), keys - set(parameters(TORCH_SCHEDULERS[name]))


def test_the_package_checks_its_arguments_with_the_same_schema():
    from logreg.data import CSVDataModule
    from logreg.model import LogisticRegression

    with pytest.raises(ConfigError, match=r"^data\.val_fraction=1\.5: expected a fraction in \[0, 1\)$"):
        CSVDataModule("x.csv", val_fraction=1.5)
    with pytest.raises(ConfigError, match=r"^model\.optimizer\.momentum=-1\.0: expected a number >= 0$"):
        LogisticRegression(3, {"name": "sgd", "lr": 1.0, "momentum": -1.0})
    with pytest.raises(ConfigError, match=r"^model\.threshold=1\.0: expected a probability"):
        LogisticRegression(3, threshold=1.0)
    assert torch.is_tensor(LogisticRegression(3).threshold)


def test_a_module_keeps_its_arguments_as_its_schema_typed_and_checked(tmp_path):
    from logreg.data import CSVDataModule
    from logreg.model import LogisticRegression

    datamodule = CSVDataModule(str(tmp_path / "x.csv"), label_column="y", features=["a", 2], val_fraction=0.2)
    model = LogisticRegression(3, {"name": "adam", "lr": 0.01}, scheduler={"name": "step", "step_size": 5})

    assert type(datamodule.options) is schema.CSVDataConfig
    assert (datamodule.options.label_column, datamodule.options.features) == ("y", ["a", 2])
    assert datamodule.options.val_fraction == 0.2 and datamodule.options.test_fraction == 0.1
    assert type(model.options) is schema.ModelConfig and model.n_features == 3
    assert model.optimizer_options == schema.AdamConfig(lr=0.01)
    assert model.scheduler_options == schema.StepConfig(step_size=5)
    assert model.hparams["optimizer"] == {"name": "adam", "lr": 0.01}  # the checkpoint keeps the plain arguments


SCHEMAS = [value for value in vars(schema).values() if dataclasses.is_dataclass(value) and isinstance(value, type)]


def typos(name: str, rng: random.Random) -> list[str]:
    """A letter dropped, doubled, and two neighbours swapped, at random places."""
    i, j = rng.randrange(len(name)), rng.randrange(len(name) - 1)
    return [name[:i] + name[i + 1 :], name[:i] + name[i] + name[i:], name[:j] + name[j + 1] + name[j] + name[j + 2 :]]


@pytest.mark.parametrize("node", SCHEMAS, ids=[node.__name__ for node in SCHEMAS])
def test_a_near_miss_of_a_key_suggests_the_key(node):
    rng = random.Random(node.__name__)
    names = [f.name for f in dataclasses.fields(node)]
    for name in (n for n in names if len(n) >= 5 and not n.startswith("_")):
        for typo in typos(name, rng):
            if typo in names:
                continue
            message = checking.unknown_key(node, f"outer.{typo}")
            assert message.startswith(f"outer.{typo}: no such key; did you mean outer.{name}? "), message


def test_a_gpu_asked_for_on_a_machine_without_one_is_refused_before_lightning_is_imported(tmp_path):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO / "train.py"), "trainer=gpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # torch then sees no CUDA GPU, on any machine
    )

    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 1 and lines == [
        "error: trainer.accelerator=gpu, but this machine has no CUDA GPU (torch.cuda.is_available() is False); "
        "use trainer=cpu, or trainer=ddp_cpu for several processes"
    ], result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "lightning" not in imported
    assert not list(tmp_path.iterdir())  # no run folder claimed


@pytest.mark.parametrize(
    "owner, item",
    [(s, f) for s in SCHEMAS for f in dataclasses.fields(s) if rule_of(f) is not None],
    ids=lambda value: getattr(value, "__name__", getattr(value, "name", "")),
)
def test_every_declared_rule_allows_its_fields_default_and_refuses_some_value(owner, item):
    default = item.default_factory() if item.default is dataclasses.MISSING else item.default
    rule = rule_of(item)

    if default != "???":  # a required value (MISSING) has no default to allow
        assert rule.allows(default), (owner.__name__, item.name, default)
    candidates = (object(), -(10**40), "", "no such choice", [0], "ddp_spawn")
    assert not all(map(rule.allows, candidates)), f"{owner.__name__}.{item.name}: a rule that allows anything"


@pytest.mark.parametrize("name", sorted(schema.MOVED))
def test_a_name_that_moved_out_of_the_schema_still_imports_with_a_warning_naming_its_home(name):
    home = importlib.import_module(schema.MOVED[name])

    with pytest.warns(DeprecationWarning, match=rf"logreg\.schema\.{name} moved to {schema.MOVED[name]}\.{name}"):
        moved = getattr(schema, name)
    assert moved is getattr(home, name)

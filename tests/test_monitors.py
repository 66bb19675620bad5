"""Every key that names a metric to watch (`monitor`, the plateau scheduler's, any callback's) is checked against the
metrics the run will log, before Lightning is imported; at run time a missing metric is an error, never a skipped
step."""

import pytest
from omegaconf import OmegaConf, open_dict

from conftest import sampled
from logreg.checking import check_config
from logreg.errors import ConfigError, as_user_error

WATCHING = "scheduler=plateau callbacks=early_stopping"  # every option that brings a monitor-like key


def refusal(compose, *overrides: str) -> str | None:
    try:
        check_config(compose(*overrides))
    except Exception as error:
        user_error = as_user_error(error)
        assert isinstance(user_error, ConfigError), repr(error)
        return str(user_error)
    return None


def monitor_keys(compose) -> list[str]:
    cfg = compose(*WATCHING.split())
    with open_dict(cfg):
        del cfg["hydra"]
    typed = OmegaConf.to_object(cfg)
    return [key for key, _ in typed.monitors()]


# (overrides beside the key, a metric the run does not log while fitting)
NOT_LOGGED = [
    ("", "val/nosuch"),
    ("", "test/loss"),  # logged after fitting only
    ("", "train/auroc"),
    ("data.val_fraction=0 monitor=train/loss", "val/loss"),  # no validation rows
    ("trainer.limit_val_batches=0 monitor=train/loss", "val/loss"),  # validation switched off
]


def test_the_monitor_keys_are_found_in_the_offered_configs(compose, diabetes_dir):
    keys = monitor_keys(compose)

    assert {"monitor", "model.scheduler.monitor", "callbacks.checkpoint.monitor"} <= set(keys)
    assert "callbacks.early_stopping.monitor" in keys


@sampled("others, metric", NOT_LOGGED, every=3)
def test_every_monitor_key_naming_a_metric_the_run_does_not_log_is_refused(compose, diabetes_dir, others, metric):
    for key in monitor_keys(compose):
        overrides = [*WATCHING.split(), *others.split(), f"{key}={metric}"]
        if key != "monitor":  # the others follow `monitor` by default: keep it valid, so the key itself is named
            overrides.append("monitor=train/loss" if "monitor=train/loss" in others else "monitor=val/loss")
        message = refusal(compose, *overrides)

        assert message is not None and message.startswith(f"{key}={metric}: expected a metric logged while fitting")


def test_a_plateau_scheduler_on_validation_rows_is_refused_where_the_refit_has_none(compose, diabetes_dir):
    message = refusal(compose, "scheduler=plateau", "cv.folds=3", "optimized_metric=cv/val/loss")

    assert message is not None and message.startswith("model.scheduler.monitor=val/loss: expected a train/ metric")
    assert refusal(compose, "scheduler=plateau", "cv.folds=3", "optimized_metric=cv/val/loss", "cv.refit=false") is None


def test_a_monitored_metric_missing_at_run_time_is_an_error_not_a_skipped_step(compose, tiny_csv, tmp_path):
    from omegaconf import OmegaConf, open_dict

    from logreg.training import train

    cfg = compose("data=csv", f"data.path={tiny_csv}", "scheduler=plateau", "model.scheduler.monitor=val/nosuch")
    with open_dict(cfg):
        del cfg["hydra"]
    typed = OmegaConf.to_object(cfg)  # a TrainConfig past the schema's check, as a caller of the package may build

    with pytest.raises(ConfigError, match=r"^model\.scheduler\.monitor=val/nosuch: this run does not log it"):
        train(typed)


def test_a_plateau_scheduler_steps_only_on_epochs_that_validate(run, tiny_csv, tmp_path):
    from logreg.checkpoints import read_checkpoint

    run(
        "data=csv",
        f"data.path={tiny_csv}",
        "scheduler=plateau",
        "model.scheduler.patience=0",
        "trainer.check_val_every_n_epoch=3",
        "epochs=7",
        "callbacks.last_checkpoint.every_seconds=0",
    )
    scheduler = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["lr_schedulers"][0]

    assert scheduler["last_epoch"] == 2  # epochs 2 and 5 validated (counted from 0): two steps

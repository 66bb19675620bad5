"""Train lab 5's logistic regression: `python train.py lr=1 epochs=100` (every key: `python train.py --help`).

Composes the config in conf/, instantiates the DataModule, model, loggers, callbacks and Trainer from it, fits, tests,
and returns the metric a sweeper optimizes. Everything of the run lands in its own folder under logs/.
"""

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig


def check_run(cfg: DictConfig, run_dir: Path) -> None:
    """Refuse, before any work, what cannot train: the messages name the key and what to do."""
    import torch

    from logreg.errors import ConfigError

    if not (isinstance(cfg.epochs, int) and cfg.epochs >= 1):
        raise ConfigError(f"epochs={cfg.epochs!r}: expected a whole number of at least 1")
    if cfg.trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={cfg.trainer.accelerator}, but this machine has no CUDA GPU "
            "(torch.cuda.is_available() is False); use trainer=cpu, or trainer=ddp_cpu for several processes"
        )
    first_process = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    if first_process and any((run_dir / name).exists() for name in ("checkpoints", "metrics.json")):
        raise ConfigError(
            f"run folder {run_dir} already holds a run; a new run never writes into it. "
            "Leave hydra.run.dir at its default (a new timestamped folder) or name an empty one"
        )


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test as `cfg` says; return the final metrics (train/*, val/*, test/*)."""
    import lightning as L  # imported here, so `--help` and `--cfg job` answer at once

    from logreg.checkpoints import load_checkpoint
    from logreg.report import print_summary

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    check_run(cfg, run_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, n_features=datamodule.n_features, _convert_="all")
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(callback) for callback in (cfg.get("callbacks") or {}).values()]
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)

    if cfg.ckpt_path:  # refuse an unsafe checkpoint with a clear message before Lightning reads it
        load_checkpoint(cfg.ckpt_path, trust=cfg.trust_checkpoint)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=not cfg.trust_checkpoint)
    metrics = {name: value.item() for name, value in trainer.callback_metrics.items()}
    if datamodule.split_tensors[datamodule.hparams.test_split][1].numel():
        metrics |= {name: value for name, value in trainer.test(model, datamodule=datamodule, verbose=False)[0].items()}

    if trainer.logger is not None:  # the HPARAMS tab: this run's knobs beside its final numbers
        hparams = {"seed": cfg.seed, "epochs": cfg.epochs, **model.hparams, **datamodule.hparams}
        trainer.logger.log_hyperparams(hparams, metrics={f"final/{name}": value for name, value in metrics.items()})
    if trainer.is_global_zero:
        print_summary(metrics, run_dir, model, datamodule.feature_names)
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from logreg.cli import ddp_processes_of_this_job, errors_as_messages

    try:
        with errors_as_messages(), ddp_processes_of_this_job(script=__file__):
            metrics = train(cfg)
    except SIGTERMException:  # Lightning stopped after the current step; ResumeHint named the checkpoint
        sys.exit(128 + 15)
    if cfg.optimized_metric in metrics:
        return metrics[cfg.optimized_metric]
    if HydraConfig.get().mode == RunMode.MULTIRUN:  # a sweeper needs it: fail this trial, saying why
        from logreg.errors import ConfigError

        raise ConfigError(f"optimized_metric={cfg.optimized_metric} was not measured; this run has {sorted(metrics)}")
    return float("nan")


if __name__ == "__main__":
    main()

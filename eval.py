"""Evaluate a checkpoint: `python eval.py ckpt_path=logs/runs/<run>/checkpoints/last.ckpt` (keys: conf/eval.yaml).

Scores the checkpoint on the rows its training run tested on (cut again exactly as in training), or on `split=...`,
and reports accuracy, AUROC, F1, precision, recall, log-loss (`test/loss`) and the confusion matrix, with the
coefficients; all into a run folder under logs/evals/ (metrics.json, confusion_matrix.json, coefficients.csv,
TensorBoard scalars and images).
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig


def evaluate(cfg: DictConfig) -> dict:
    """Test the checkpoint on `cfg.split`; return its metrics, the confusion matrix [[tn, fp], [fn, tp]] included."""
    from logreg.checkpoints import load_checkpoint
    from logreg.errors import ConfigError
    from logreg.plots import EvaluationPlots
    from logreg.report import print_confusion_matrix, print_summary

    if cfg.split not in (None, "train", "val", "test"):
        raise ConfigError(f"split={cfg.split}: expected test, val, train, or null for the rows training tested on")
    options = dict(cfg.data) | ({} if cfg.split is None else {"test_split": cfg.split})
    model, datamodule = load_checkpoint(cfg.ckpt_path, trust=cfg.trust_checkpoint, **options)
    split = datamodule.hparams.test_split
    datamodule.load()
    if len(datamodule.split_rows[split]) == 0:
        with_rows = " or ".join(f"split={name}" for name, rows in datamodule.split_rows.items() if len(rows))
        raise ConfigError(
            f"split={split}: {cfg.ckpt_path} was trained with data.{split}_fraction=0, so it has no {split} rows; "
            f"use {with_rows}"
        )
    plots = EvaluationPlots(threshold=model.hparams.threshold)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=[plots])

    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    if trainer.logger is not None:
        trainer.logger.log_hyperparams({"ckpt_path": cfg.ckpt_path, "split": split, **model.hparams})
    if trainer.is_global_zero:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        print_confusion_matrix(plots.confusion_matrix["test"], run_dir, split)
        print_summary(metrics, run_dir, model, datamodule.feature_names)
    return {**metrics, "confusion_matrix": plots.confusion_matrix["test"]}


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from logreg.cli import errors_as_messages

    with errors_as_messages():
        evaluate(cfg)


if __name__ == "__main__":
    main()

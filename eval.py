"""Evaluate a checkpoint: `python eval.py ckpt_path=logs/runs/<run>/checkpoints/last.ckpt` (keys: conf/eval.yaml).

Scores the checkpoint on the same split it was trained with (test rows by default) and reports accuracy, AUROC, F1,
precision, recall, log-loss and the confusion matrix, with the coefficients; all into a run folder under logs/evals/
(metrics.json, coefficients.csv, TensorBoard scalars and images).
"""

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig


def evaluate(cfg: DictConfig) -> dict:
    """Test the checkpoint on `cfg.split`; return its metrics, the confusion matrix included."""
    from logreg.checkpoints import load_checkpoint
    from logreg.errors import ConfigError
    from logreg.plots import EvaluationPlots
    from logreg.report import print_summary

    if cfg.split not in ("train", "val", "test"):
        raise ConfigError(f"split={cfg.split}: expected test, val or train")
    model, datamodule = load_checkpoint(cfg.ckpt_path, trust=cfg.trust_checkpoint, **cfg.data, test_split=cfg.split)
    plots = EvaluationPlots(threshold=model.hparams.threshold)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=[plots])

    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    if trainer.logger is not None:
        trainer.logger.log_hyperparams({"ckpt_path": cfg.ckpt_path, "split": cfg.split, **model.hparams})
    if trainer.is_global_zero:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        print_summary(metrics, run_dir, model, datamodule.feature_names)
        (tn, fp), (fn, tp) = plots.confusion_matrix["test"]
        print(f"Confusion matrix on the {cfg.split} rows (rows: true 0, 1; columns: predicted 0, 1):")
        print(f"  {tn:6d} {fp:6d}\n  {fn:6d} {tp:6d}")
        (run_dir / "confusion_matrix.json").write_text(json.dumps({"tn": tn, "fp": fp, "fn": fn, "tp": tp}) + "\n")
    return {**metrics, "confusion_matrix": plots.confusion_matrix["test"]}


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from logreg.cli import errors_as_messages

    with errors_as_messages():
        evaluate(cfg)


if __name__ == "__main__":
    main()

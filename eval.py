"""Evaluate a checkpoint: `python eval.py ckpt_path=logs/runs/<run>/checkpoints/last.ckpt` (keys: conf/eval.yaml).

Scores the checkpoint on the rows its training run tested on (cut again exactly as in training), or on `split=...`,
and reports accuracy, AUROC, F1, precision, recall, log-loss, Brier score and calibration error, the confusion matrix
and the coefficients with their uncertainty; all into a run folder under logs/evals/ (logreg/evaluation.py).
"""

import hydra
from omegaconf import DictConfig

from logreg.checking import check_config
from logreg.errors import one_line_errors, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@one_line_errors
def main(cfg: DictConfig) -> None:
    config = check_config(cfg)  # an EvalConfig
    from logreg.evaluation import evaluate  # Lightning is imported here, once the config checked out

    evaluate(config)


if __name__ == "__main__":
    run_entry(main)

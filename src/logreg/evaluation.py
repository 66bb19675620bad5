"""What `python eval.py ckpt_path=...` does: score a checkpoint on the rows its training run tested on (cut again
exactly as in training), or on `split=...`, and report every metric, the confusion matrix and the coefficients.

The checkpoint records a fingerprint of the data it trained on; data that differs (edited, reordered, another file)
is refused, since its split would hold other rows, unless `allow_changed_data=true` (then a warning says so).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

from logreg.checkpoints import AtomicCheckpointIO, datamodule_from_checkpoint, model_from_checkpoint
from logreg.errors import ConfigError, DataError
from logreg.plots import EvaluationPlots
from logreg.quiet import quiet_third_parties
from logreg.report import confusion_matrix, record_run, report, report_confusion_matrix
from logreg.schema import EvalConfig


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Score the checkpoint on `cfg.split`; return its metrics, named by the rows scored (`val/acc`, ...), and the
    confusion matrix [[tn, fp], [fn, tp]]."""
    quiet_third_parties()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    checkpoint_io = AtomicCheckpointIO(trust=cfg.trust_checkpoint)
    checkpoint = checkpoint_io.read(cfg.ckpt_path)
    model = model_from_checkpoint(checkpoint, cfg.ckpt_path)
    changes = {key: value for key, value in dataclasses.asdict(cfg.data).items() if value is not None}
    if cfg.split:
        changes["test_on"] = cfg.split
    datamodule, spec = datamodule_from_checkpoint(checkpoint, cfg.ckpt_path, **changes)
    split = datamodule.options.test_on
    difference = datamodule.differences(spec) if spec else None
    if difference and not cfg.allow_changed_data:
        raise DataError(
            f"ckpt_path={cfg.ckpt_path}: the data differs from what it was trained on ({difference}), so its {split} "
            "rows would be other rows. Point data.path at the training data, or allow_changed_data=true to score "
            "this data anyway"
        )
    if difference:
        print(f"warning: the data differs from the checkpoint's training data ({difference})", file=sys.stderr)
    if not datamodule.has_rows(split):
        with_rows = " or ".join(f"split={s}" for s in ("train", "val", "test") if datamodule.has_rows(s))
        raise ConfigError(
            f"split={split}: {cfg.ckpt_path} was trained with data.{split}_fraction=0, so it has no {split} rows; "
            f"use {with_rows}"
        )
    model.test_prefix = split
    logger = instantiate(cfg.logger) if cfg.logger else False
    trainer = instantiate(
        cfg.trainer,
        logger=logger,
        callbacks=[EvaluationPlots(histograms=False)],
        plugins=[checkpoint_io],
        enable_checkpointing=False,
    )
    datamodule.share(trainer.world_size)  # under DDP: what the other processes take instead of the table
    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    record_run(trainer.loggers, {"ckpt_path": str(cfg.ckpt_path), "split": split}, metrics)
    outputs = model.outputs("test")
    assert outputs is not None, "trainer.test scored the split's rows, which are not empty"
    probs, labels = outputs
    matrix = confusion_matrix(probs.numpy(), labels.numpy(), model.decision_threshold())
    if trainer.is_global_zero:
        folder = Path(HydraConfig.get().runtime.output_dir)
        report_confusion_matrix(matrix, folder, split)
        report(metrics, folder, model, datamodule)
    return {**metrics, "confusion_matrix": matrix}

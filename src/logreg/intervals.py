"""Confidence intervals on predicted probabilities: `python predict.py ... interval=0.95` (statsmodels'
`Logit(...).fit().get_prediction(exog).conf_int()`).

The delta method on the logit scale: for a row x~ = [x, 1] the logit x~ . theta has the standard error
sqrt(x~' V x~), V the coefficients' covariance at the end of training (`inference.cov_type`), and the interval on the
probability is sigmoid(x~ . theta -+ z se), z the normal quantile of the level.

Training stores what that needs in last.ckpt under `RECORD_KEY`, in plain values (lists of floats, strings), so the
checkpoint still loads with torch's weights-only unpickler: the estimates in float64 (the model's own weights may be
float32 once loaded) and V, or, where inference gives no valid standard errors, the reason why.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from logreg.errors import CheckpointError, ConfigError
from logreg.inference import Inference, normal_quantile

RECORD_KEY = "prediction_intervals"


def checkpoint_record(fit: Inference, cov_type: str) -> dict[str, Any]:
    """What last.ckpt keeps of `fit` for intervals: cov_type, the F+1 estimates (features, then the intercept), the
    (F+1, F+1) covariance as nested lists (None where there is none) and the reason there is none ("" otherwise)."""
    reason = fit.reason or (fit.note if fit.unidentified else "")  # a dependent column: x~' V x~ is not identified
    covariance = None if reason or fit.covariance is None else fit.covariance.tolist()
    return {
        "cov_type": cov_type,
        "coefficients": [float(c.estimate) for c in fit.coefficients],
        "covariance": covariance,
        "reason": reason if covariance is None else "",
    }


def stored_record(checkpoint: dict[str, Any], ckpt_path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's record for intervals, or, in one line, why it gives none: a CheckpointError (no record) or
    a ConfigError (a record of a fit without valid standard errors, with inference's reason)."""
    record = checkpoint.get(RECORD_KEY)
    if not isinstance(record, dict):
        raise CheckpointError(
            f"interval: ckpt_path={ckpt_path} holds no coefficient covariance (only the last.ckpt of a finished "
            "training run does; a best-*.ckpt, an older or an interrupted run's checkpoint does not); predict "
            "without interval, or train again"
        )
    if record.get("covariance") is None:
        raise ConfigError(
            f"interval: ckpt_path={ckpt_path} has no valid standard errors, so no prediction intervals: "
            f"{record.get('reason') or 'none recorded'}"
        )
    return record


def probability_intervals(features: np.ndarray, record: dict[str, Any], level: float) -> tuple[np.ndarray, np.ndarray]:
    """The lower (N,) and upper (N,) bounds of the `level` interval on p(y=1 | x) for each row of `features` (N, F)."""
    theta = np.asarray(record["coefficients"], dtype=np.float64)  # (F+1,)
    covariance = np.asarray(record["covariance"], dtype=np.float64)  # (F+1, F+1)
    design = np.column_stack([np.asarray(features, dtype=np.float64), np.ones(len(features))])  # (N, F+1)
    logits = design @ theta  # (N,)
    std_errors = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", design, covariance, design), 0.0))  # (N,)
    half_width = normal_quantile(level) * std_errors
    return _sigmoid(logits - half_width), _sigmoid(logits + half_width)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -logits))  # without overflow for large |logit|

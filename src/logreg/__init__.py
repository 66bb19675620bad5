"""Lab 5's logistic regression (Deep Learning Zero To All) as a Lightning + Hydra experiment.

The names below load on first use, so that `logreg.checking` and `logreg.errors` (what an entry script needs to check
a config) import neither torch nor Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BreastCancerDataModule": "logreg.data",
    "CSVDataModule": "logreg.data",
    "TabularDataModule": "logreg.data",
    "LogisticRegression": "logreg.model",
    "CheckpointError": "logreg.errors",
    "ConfigError": "logreg.errors",
    "DataError": "logreg.errors",
    "OutputError": "logreg.errors",
    "TrainingDiverged": "logreg.errors",
    "UserError": "logreg.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'logreg' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

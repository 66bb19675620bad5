"""Lab 5's logistic regression (Deep Learning Zero To All) as a Lightning + Hydra experiment."""

from logreg.data import BreastCancerDataModule, CSVDataModule, TabularDataModule
from logreg.errors import ConfigError, DataError, TrainingDiverged, UserError
from logreg.model import LogisticRegression

__all__ = [
    "BreastCancerDataModule",
    "CSVDataModule",
    "ConfigError",
    "DataError",
    "LogisticRegression",
    "TabularDataModule",
    "TrainingDiverged",
    "UserError",
]

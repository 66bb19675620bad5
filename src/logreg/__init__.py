"""Lab 5's logistic regression (Deep Learning Zero To All) as a Lightning + Hydra experiment."""

from logreg.data import BreastCancerDataModule, CSVDataModule, DataError, TabularDataModule
from logreg.model import LogisticRegression

__all__ = ["BreastCancerDataModule", "CSVDataModule", "DataError", "LogisticRegression", "TabularDataModule"]

"""Train lab 5's logistic regression: `python train.py lr=1 epochs=100` (every key: `python train.py --help`).

Composes the config in conf/ (typed by logreg/schema.py), checks it before Lightning is even imported, then fits,
tests and reports (logreg/training.py), returning the metric a sweeper optimizes. Everything of the run lands in its
own folder under logs/.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from logreg.checking import check_config
from logreg.errors import one_line_errors, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@one_line_errors
def main(cfg: DictConfig) -> float:
    config = check_config(cfg, sweep=HydraConfig.get().mode == RunMode.MULTIRUN)  # a TrainConfig
    from logreg.training import run  # Lightning is imported here, once the config checked out

    return run(config, script=__file__)


if __name__ == "__main__":
    run_entry(main)

"""Predict with a checkpoint: `python predict.py ckpt_path=... input=new.csv output=pred.csv` (keys: conf/predict.yaml).

Writes `probability` and `prediction` per input row, in input order (logreg/prediction.py). The output never replaces
the input or the checkpoint, nor an existing file unless `overwrite=true` and it is an earlier predictions file.
"""

import hydra
from omegaconf import DictConfig

from logreg.checking import check_config
from logreg.errors import one_line_errors, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@one_line_errors
def main(cfg: DictConfig) -> None:
    config = check_config(cfg)  # a PredictConfig
    from logreg.prediction import predict  # torch and Lightning are imported here, once the config checked out

    predict(config)


if __name__ == "__main__":
    run_entry(main)

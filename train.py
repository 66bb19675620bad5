"""Train lab 5's logistic regression: `python train.py lr=1 epochs=100` (every key: `python train.py --help`).

Composes the config in conf/, instantiates the DataModule, model, loggers, callbacks and Trainer from it, fits, tests,
and returns the metric a sweeper optimizes. Everything of the run lands in its own folder under logs/.
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test as `cfg` says; return the final metrics (train/*, val/*, test/*)."""
    import lightning as L  # imported here, so `--help` and `--cfg job` answer at once

    from logreg.report import print_summary

    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, n_features=datamodule.n_features, _convert_="all")
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(callback) for callback in (cfg.get("callbacks") or {}).values()]
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = {name: value.item() for name, value in trainer.callback_metrics.items()}
    if datamodule.split_tensors[datamodule.hparams.test_split][1].numel():
        metrics |= {name: value for name, value in trainer.test(model, datamodule=datamodule, verbose=False)[0].items()}

    if trainer.logger is not None:  # the HPARAMS tab: this run's knobs beside its final numbers
        hparams = {"seed": cfg.seed, "epochs": cfg.epochs, **model.hparams, **datamodule.hparams}
        trainer.logger.log_hyperparams(hparams, metrics={f"final/{name}": value for name, value in metrics.items()})
    if trainer.is_global_zero:
        print_summary(metrics, HydraConfig.get().runtime.output_dir, model, datamodule.feature_names)
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    metrics = train(cfg)
    return metrics[cfg.optimized_metric]


if __name__ == "__main__":
    main()

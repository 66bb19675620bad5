"""The project's Optuna sweeper for Hydra (hydra/sweeper=optuna), found by Hydra's plugin scan of `hydra_plugins`."""

"""hydra/launcher=together: the project's launcher, which trains a sweep's trials that share their rows together."""

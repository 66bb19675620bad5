"""optimizer=newton inside Lightning against scikit-learn's lbfgs (tol=1e-10) and newton-cholesky on the same rows.

    python benchmarks/bench_newton.py [--rows 1000000] [--features 8] [--repeats 3]

One synthetic table (float32 features, as the project reads them; scikit-learn gets the same numbers in float64). The
project side is `Trainer.fit` of `LogisticRegression(optimizer={"name": "newton"})` at precision 64-true on a
`TabularDataModule` of all rows (one epoch, no logger, no checkpoint, no bar): its setup (the float64 copy of the
features) and every Newton iteration are counted. Each side runs `--repeats` times, interleaved, on one thread
(torch.set_num_threads(1), threadpoolctl for scikit-learn's BLAS); the script prints the median CPU time of each
(time.process_time), the ratios, and the largest difference of the coefficients from newton-cholesky's.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch


def synthetic_table(n_rows: int, n_features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = np.asfortranarray(rng.normal(size=(n_rows, n_features)).astype(np.float32))  # as the CSV reader gives
    logits = features.astype(np.float64) @ np.linspace(1.0, -1.0, n_features) + 0.25
    labels = (rng.uniform(size=n_rows) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    return features, labels


def project_fit(features: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """CPU seconds of Trainer.fit with optimizer=newton, and the coefficients [w..., b]."""
    import lightning as L

    from logreg.data import TabularDataModule
    from logreg.model import LogisticRegression
    from logreg.quiet import quiet_third_parties
    from logreg.table import Table

    quiet_third_parties()

    class SyntheticTable(TabularDataModule):
        def read(self) -> Table:
            return Table(features, labels, [f"x{i}" for i in range(1, features.shape[1] + 1)])

    datamodule = SyntheticTable(val_fraction=0.0, test_fraction=0.0)
    datamodule.load()
    model = LogisticRegression(n_features=features.shape[1], optimizer={"name": "newton", "lr": 1.0})
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="64-true",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    start = time.process_time()
    trainer.fit(model, datamodule=datamodule)
    seconds = time.process_time() - start
    assert model.newton_result is not None and model.newton_result["converged"], model.newton_result
    weight, bias = model.folded_weights()
    return seconds, np.append(weight.detach().numpy().ravel(), bias.detach().numpy())


def sklearn_fit(features: np.ndarray, labels: np.ndarray, solver: str) -> tuple[float, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = LogisticRegression(C=np.inf, solver=solver, tol=1e-10, max_iter=10_000).fit(features, labels)
    seconds = time.process_time() - start
    return seconds, np.append(fit.coef_.ravel(), fit.intercept_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    features, labels = synthetic_table(arguments.rows, arguments.features)
    features64, labels64 = features.astype(np.float64), labels.astype(np.float64)
    times: dict[str, list[float]] = {"newton (project)": [], "sklearn lbfgs": [], "sklearn newton-cholesky": []}
    coefficients: dict[str, np.ndarray] = {}
    with threadpool_limits(limits=1):
        for _ in range(arguments.repeats):
            for name in times:
                if name == "newton (project)":
                    seconds, theta = project_fit(features, labels)
                else:
                    seconds, theta = sklearn_fit(features64, labels64, name.split()[-1])
                times[name].append(seconds)
                coefficients[name] = theta
    reference = coefficients["sklearn newton-cholesky"]
    print(f"{arguments.rows:,} x {arguments.features}, median of {arguments.repeats} (CPU seconds, one thread)")
    project = statistics.median(times["newton (project)"])
    for name, values in times.items():
        seconds = statistics.median(values)
        difference = np.max(np.abs(coefficients[name] - reference) / np.maximum(np.abs(reference), 1e-3))
        print(
            f"  {name:24s} {seconds:8.3f} s   project / this {project / seconds:5.2f}x   "
            f"max relative coefficient difference from newton-cholesky {difference:.1e}"
        )


if __name__ == "__main__":
    main()

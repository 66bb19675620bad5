"""Every logger offered in conf/logger works to the end of a run: the run's metrics and knobs can be read back with
the logger's own tools (TensorBoard's event reader is tested in test_train.py)."""

import csv
import re
import sqlite3

import pytest
import yaml

from conftest import sampled


def test_logger_csv_writes_every_epoch_and_the_final_metrics(run, tiny_csv, tmp_path):
    metrics = run("data=csv", f"data.path={tiny_csv}", "epochs=3", "logger=csv")

    with (tmp_path / "csv" / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len([row for row in rows if row["train/loss"]]) == 3 and len([row for row in rows if row["val/loss"]]) == 3
    final = next(row for row in rows if row.get("final/test/acc"))
    assert float(final["final/test/acc"]) == pytest.approx(metrics["test/acc"])
    hparams = yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text())
    assert hparams["optimizer.lr"] == 1.0 and hparams["seed"] == 1
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "coefficients.csv").is_file()


def test_logger_none_writes_no_event_files_but_the_run_reports_everything(run, tiny_csv, tmp_path):
    metrics = run("data=csv", f"data.path={tiny_csv}", "epochs=2", "logger=none")

    assert not list(tmp_path.rglob("events.out.tfevents.*")) and not (tmp_path / "csv").exists()
    assert metrics["test/acc"] > 0 and (tmp_path / "metrics.json").is_file()


def test_logger_mlflow_records_a_run_that_mlflows_client_reads_back(run, tiny_csv, tmp_path):
    from mlflow.tracking import MlflowClient

    metrics = run("data=csv", f"data.path={tiny_csv}", "epochs=3", "logger=mlflow", run_dir=tmp_path / "run")

    assert sqlite3.connect(tmp_path / "logs" / "mlflow.db").execute("select count(*) from runs").fetchone()[0] == 1
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'logs' / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("logreg").experiment_id])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["optimizer.name"] == "sgd" and mlflow_run.data.params["data.batch_size"] == "None"
    assert mlflow_run.data.metrics["final/test/acc"] == pytest.approx(metrics["test/acc"])
    assert len(client.get_metric_history(mlflow_run.info.run_id, "train/loss")) == 3


def test_logger_mlflow_without_mlflow_names_the_extra(run, tiny_csv, monkeypatch):
    import importlib.util

    from logreg.errors import ConfigError

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "mlflow" else real_find_spec(name, *args)
    )
    with pytest.raises(ConfigError, match=r"logger=mlflow needs MLflow: pip install 'logreg\[mlflow\]'"):
        run("data=csv", f"data.path={tiny_csv}", "epochs=1", "logger=mlflow")


@sampled(
    "uri, known",
    [
        ("sqlite:///logs/mlflow.db", True),
        ("http://host:5000", True),
        ("https://mlflow.example.org", True),
        ("file:///tmp/mlruns", True),
        ("postgresql+psycopg2://user@host/db", True),
        ("databricks", True),
        ("mlruns", True),
        ("/abs/mlruns", True),
        ("C:\\mlruns", True),
        ("bogus://x", False),
        ("htp://host:5000", False),
        ("s3://bucket/mlruns", False),  # an artifact store, not a tracking store
        ("", False),
        ("null", False),  # no store at all: Lightning would make one named None in the working directory
    ],
    every=2,
)
def test_logger_tracking_uri_is_checked_by_its_scheme_before_lightning_is_imported(compose, diabetes_dir, uri, known):
    from logreg.checking import check_config
    from logreg.errors import ConfigError

    cfg = compose("logger=mlflow", f"logger.tracking_uri={uri}" if uri == "null" else f"logger.tracking_uri='{uri}'")
    if known:
        cfg = check_config(cfg)
    else:
        with pytest.raises(ConfigError, match=rf"^logger\.tracking_uri={re.escape(uri)}: expected a tracking URI"):
            cfg = check_config(cfg)

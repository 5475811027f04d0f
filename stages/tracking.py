"""MLflow tracking for train and evaluate.

MLflow's own default store applies (``sqlite:///mlflow.db`` in the working directory, artifacts
in ``./mlruns``), so ``mlflow ui`` from the repo root shows every run; MLFLOW_TRACKING_URI points
at a shared server instead. The run id is kept in the run folder (``mlflow_run.json``) so a
resumed training continues the same MLflow run and evaluate logs its metrics next to it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pix2pix.files import atomic_write_text

RUN_FILE = "mlflow_run.json"
FLUSH_EVERY = 50  # steps per batched write: one DB transaction each


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


class TrainingTracker:
    """Logs params, per-step losses and lr, sample grids and the final generator to one run."""

    def __init__(self, experiment: str, run_dir: Path, params: dict):
        import mlflow

        self.mlflow = mlflow
        self.client = mlflow.tracking.MlflowClient()
        self.run_file = Path(run_dir) / RUN_FILE
        mlflow.set_experiment(experiment)
        previous = json.loads(self.run_file.read_text())["run_id"] if self.run_file.exists() else None
        self.run = mlflow.start_run(run_id=previous, run_name=None if previous else Path(run_dir).name)
        if previous is None:
            mlflow.set_tags({"git_commit": git_commit(), "run_dir": str(run_dir)})
            mlflow.log_params(flatten(params))
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.run_file,
            json.dumps({"run_id": self.run.info.run_id, "experiment": experiment, "tracking_uri": mlflow.get_tracking_uri()}) + "\n",
        )
        self.pending: list = []

    def on_step(self, report) -> None:
        from mlflow.entities import Metric

        timestamp = int(self.mlflow.utils.time.get_current_time_millis())
        values = {**report.losses, "lr": report.lr}
        self.pending += [Metric(key, float(value), timestamp, report.step) for key, value in values.items()]
        if report.step % FLUSH_EVERY == 0 or report.step == report.total_steps:
            self.flush()

    def on_sample(self, step: int, grid) -> None:
        self.mlflow.log_image(grid, key="samples", step=step)

    def flush(self) -> None:
        for start in range(0, len(self.pending), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run.info.run_id, metrics=self.pending[start : start + 1000])
        self.pending = []

    def finish(self, generator_path: Path | None, status: str = "FINISHED") -> None:
        self.flush()
        if generator_path is not None and generator_path.exists():
            self.mlflow.log_artifact(str(generator_path), artifact_path="model")
        self.mlflow.end_run(status=status)


def log_evaluation(run_dir: Path, metrics: dict, results_dir: Path) -> bool:
    """Add evaluation metrics and the metrics table to the run that trained the model, if any."""
    run_file = Path(run_dir) / RUN_FILE
    if not run_file.exists():
        return False
    import mlflow

    info = json.loads(run_file.read_text())
    with mlflow.start_run(run_id=info["run_id"]):
        mlflow.log_metrics({f"eval_{key}": value for key, value in metrics.items()})
        mlflow.log_artifact(str(Path(results_dir) / "metrics.csv"), artifact_path="evaluation")
    return True

"""MLflow tracking for train and evaluate.

The store belongs to the repository, not to the working folder: ``sqlite:///ROOT/mlflow.db`` with
artifacts in ``ROOT/mlruns``, ROOT being the main repository even when DVC runs an experiment in
``.dvc/tmp/exps/...`` (so queued and temporary experiments keep their runs); MLFLOW_TRACKING_URI
points at a shared server instead. Nothing run-specific goes into the run folder, a DVC output:
a training's run is found in the store by its tags (the run folder relative to its repository,
and the DVC experiment's name when DVC runs one), so outputs reproduce, move and travel freely.
Runs carry MLflow's standard source tags and their training data as a dataset input whose digest is
DVC's md5 of it; their experiments are marked as model training (not GenAI) for `mlflow ui`.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pix2pix.errors import UserError
from pix2pix.files import atomic_write_text

MARKER = "mlflow.json"  # {"experiment": NAME}: this folder's training was tracked there
RUN_DIR_TAG = "pix2pix.run_dir"
DVC_EXPERIMENT_TAG = "pix2pix.dvc_experiment"
ERROR_TAG = "pix2pix.error"
FLUSH_EVERY = 50  # steps per batched write: one DB transaction each
EVALUATION_ARTIFACTS = "evaluation"  # a run's artifacts: the results folder of `pix2pix evaluate` (images/, metrics.*, evaluation.json)
# MLflow's own names (mlflow.utils.mlflow_tags and its UI's experiment kinds), not imported: mlflow loads lazily
SOURCE_NAME_TAG, SOURCE_TYPE_TAG, GIT_COMMIT_TAG = "mlflow.source.name", "mlflow.source.type", "mlflow.source.git.commit"
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def source_commit() -> str | None:
    """The commit the code comes from: a DVC experiment's baseline (DVC runs it from a commit of its
    own, the baseline plus the changed params), else HEAD; None outside a git repository."""
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def source_tags() -> dict[str, str]:
    """MLflow's standard source tags: the command as typed up to its first option (``pix2pix train``), run
    locally, from ``source_commit()`` if known."""
    words = [Path(sys.argv[0]).name, *itertools.takewhile(lambda word: not word.startswith("-"), sys.argv[1:])]
    commit = source_commit()
    return {SOURCE_NAME_TAG: " ".join(words), SOURCE_TYPE_TAG: "LOCAL", **({GIT_COMMIT_TAG: commit} if commit else {})}


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def _repository(folder: Path, skip_dvc_tmp: bool) -> Path | None:
    """The nearest folder at or above ``folder`` holding ``.git`` or ``.dvc/``; with ``skip_dvc_tmp``,
    one inside a ``.dvc`` folder (a DVC experiment's copy in .dvc/tmp/exps) does not count."""
    for candidate in (folder, *folder.parents):
        if skip_dvc_tmp and ".dvc" in candidate.parts:
            continue
        if (candidate / ".git").exists() or (candidate / ".dvc").is_dir():
            return candidate
    return None


def repository_root() -> Path:
    """DVC_ROOT, which DVC sets to the main repository for every stage, experiments included; else
    the repository around the working folder; else the working folder."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    cwd = Path.cwd().resolve()
    return _repository(cwd, skip_dvc_tmp=True) or cwd


def repository_store() -> str:
    return f"sqlite:///{repository_root() / 'mlflow.db'}"


def connect():
    """MLflow, pointed at the repository's store unless MLFLOW_TRACKING_URI names another.

    MLflow creates a new SQLite store's tables without a lock: two stages starting at once on a repository
    without mlflow.db (`dvc queue start -j 2`) would both migrate it, and one fail. The first to come creates
    it, holding a lock on the repository's folder; the others wait, then find it made."""
    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(repository_store())  # which sets MLFLOW_TRACKING_URI too
        folder = os.open(repository_root(), os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            mlflow.search_experiments(max_results=1)  # creates the store
        finally:
            os.close(folder)  # which releases the lock
    return mlflow


def experiment_id(mlflow, name: str) -> str:
    """The experiment's id, created with its artifacts under ROOT/mlruns in the repository's store
    (MLflow's default would be ./mlruns of whichever folder created it), and marked as model training,
    so that `mlflow ui` shows its runs as such (unless someone chose another kind there)."""
    from mlflow.exceptions import MlflowException

    found = mlflow.get_experiment_by_name(name)
    if found is None:
        in_repository = mlflow.get_tracking_uri() == repository_store()
        location = (repository_root() / "mlruns").as_uri() if in_repository else None
        try:
            return mlflow.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
        except MlflowException as exc:  # another stage created it meanwhile
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            found = mlflow.get_experiment_by_name(name)
    if EXPERIMENT_KIND_TAG not in found.tags:
        mlflow.MlflowClient().set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    return found.experiment_id


def run_tags(run_dir: Path) -> dict[str, str]:
    """What finds a run folder's run: the folder relative to its repository (absolute outside
    one), and the DVC experiment running it, if any."""
    folder = Path(run_dir).resolve()
    repository = _repository(folder, skip_dvc_tmp=False)
    tags = {RUN_DIR_TAG: folder.relative_to(repository).as_posix() if repository else str(folder)}
    if os.environ.get("DVC_EXP_NAME"):
        tags[DVC_EXPERIMENT_TAG] = os.environ["DVC_EXP_NAME"]
    return tags


def quoted(value: str) -> str:
    """``value`` as a literal of an MLflow filter string, which has no escapes: in the quote it lacks."""
    return f'"{value}"' if "'" in value else f"'{value}'"


def check_registered_name(name: str) -> None:
    """Refuse a registered model name the registry would refuse, before anything runs."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_name

    try:
        _validate_model_name(name)
    except MlflowException as exc:
        raise UserError(f"--register: {exc.message}") from None
    if "'" in name and '"' in name:
        raise UserError(f"--register {name!r}: use ' or \", not both (MLflow's filters cannot quote it)")


def latest_run(mlflow, experiment: str, tags: dict[str, str]):
    """The newest run of the experiment carrying all of ``tags``, or None."""
    where = " and ".join(f"tags.`{key}` = {quoted(value)}" for key, value in tags.items())
    runs = mlflow.search_runs([experiment_id(mlflow, experiment)], where, order_by=["attributes.start_time DESC"], max_results=1, output_format="list")
    return runs[0] if runs else None


def create_run(mlflow, experiment: str, tags: dict[str, str]):
    """A new run named after the DVC experiment when DVC runs one, else after the run folder."""
    run_name = os.environ.get("DVC_EXP_NAME") or Path(tags[RUN_DIR_TAG]).name
    return mlflow.MlflowClient().create_run(experiment_id(mlflow, experiment), run_name=run_name, tags={**tags, **source_tags()})


def dvc_dataset(folder: Path) -> tuple[str, str]:
    """The dataset ``folder`` belongs to, as (name, digest): the DVC output holding it (data/split/NAME for
    data/split/NAME/train: train and val together), named by its path in the repository, with the md5 DVC
    computes for it (what dvc.lock records); outside a DVC repository or output, ``folder`` itself, hashed
    the same way."""
    from dvc.exceptions import NotDvcRepoError, OutputNotFoundError
    from dvc.repo import Repo

    try:
        with Repo(str(folder)) as repo:
            (out,) = repo.find_outs_by_path(str(folder), strict=False)
            return out.def_path, out.get_hash().value
    except (NotDvcRepoError, OutputNotFoundError):
        from dvc_data.hashfile.build import build
        from dvc_data.hashfile.db import HashFileDB
        from dvc_objects.fs.local import LocalFileSystem
        from dvc_objects.fs.memory import MemoryFileSystem

        _, _, tree = build(HashFileDB(MemoryFileSystem(), "/"), str(Path(folder).resolve()), LocalFileSystem(), "md5")
        return str(Path(folder).resolve()), tree.hash_info.value


def log_dataset(mlflow, run_id: str, folder: Path) -> None:
    """Log ``dvc_dataset(folder)`` as the run's training dataset input."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    name, digest = dvc_dataset(folder)
    dataset = Dataset(name=name, digest=digest, source_type="local", source=json.dumps({"uri": name}))
    mlflow.MlflowClient().log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])])


class TrainingTracker:
    """Logs params, per-step losses and lr, sample grids and the final generator to one run.

    The run opens at the first thing to log, so rerunning a finished training opens none. It is the
    folder's latest run if that one did not finish and training resumes (``on_start`` past step 0),
    else a new one."""

    def __init__(self, experiment: str, run_dir: Path, params: dict, dataset: Path | None = None):
        self.mlflow = connect()
        self.experiment, self.run_dir, self.params, self.dataset = experiment, Path(run_dir), params, dataset
        self.run = None
        self.pending: list = []
        self.resuming = True  # until training says where it starts: a failure before that belongs to the last attempt

    def on_start(self, step: int) -> None:
        self.resuming = step > 0

    def run_id(self) -> str:
        if self.run is None:
            tags = run_tags(self.run_dir)
            run = latest_run(self.mlflow, self.experiment, tags)
            resumed = self.resuming and run is not None and run.info.status != "FINISHED"
            if not resumed:
                run = create_run(self.mlflow, self.experiment, tags)
            self.run = self.mlflow.start_run(run_id=run.info.run_id)
            if not resumed:
                self.mlflow.log_params(flatten(self.params))
                if self.dataset is not None:
                    log_dataset(self.mlflow, run.info.run_id, self.dataset)
            elif ERROR_TAG in run.data.tags:  # the failure is past: this attempt may succeed
                self.mlflow.MlflowClient().delete_tag(run.info.run_id, ERROR_TAG)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / MARKER, json.dumps({"experiment": self.experiment}) + "\n")
        return self.run.info.run_id

    def on_step(self, report) -> None:
        from mlflow.entities import Metric

        timestamp = int(self.mlflow.utils.time.get_current_time_millis())
        values = {**report.losses, "lr": report.lr}
        self.pending += [Metric(key, float(value), timestamp, report.step) for key, value in values.items()]
        if report.step % FLUSH_EVERY == 0 or report.step == report.total_steps:
            self.flush()

    def on_validation(self, step: int, scores: dict[str, float]) -> None:
        """Validation scores as metrics val_<name>, at their step."""
        self.run_id()
        self.mlflow.log_metrics({f"val_{name}": value for name, value in scores.items()}, step=step)

    def on_sample(self, step: int, grid, path: Path) -> None:
        """The grid as an image at its step, for MLflow's own step slider, and the run folder's file of it
        (``sample_path``) as artifact samples/step_NNNNNNN.png, which `pix2pix compare --mlflow-run` replays:
        MLflow has no API listing images by step, and its private naming of their files has changed between releases."""
        from pix2pix.train.loop import SAMPLES_DIR

        self.run_id()
        self.mlflow.log_image(grid, key="samples", step=step)
        self.mlflow.log_artifact(str(path), artifact_path=SAMPLES_DIR)

    def flush(self) -> None:
        for start in range(0, len(self.pending), 1000):  # MLflow's batch limit
            self.mlflow.MlflowClient().log_batch(self.run_id(), metrics=self.pending[start : start + 1000])
        self.pending = []

    def finish(
        self,
        generator_path: Path | None,
        status: str = "FINISHED",
        error: str | None = None,
        metrics: dict | None = None,
        log_model: Callable[[], None] | None = None,
    ) -> None:
        """End the run with ``status``; a FAILED one keeps the error message as tag pix2pix.error. ``log_model``
        logs a model into the run before it ends."""
        self.flush()
        self.run_id()
        if metrics:
            self.mlflow.log_metrics(metrics)
        if error is not None:
            self.mlflow.set_tag(ERROR_TAG, error[:5000])
        if generator_path is not None and generator_path.exists():
            self.mlflow.log_artifact(str(generator_path), artifact_path="model")
        if log_model is not None:
            log_model()
        self.mlflow.end_run(status=status)


def evaluation_metrics(summary: dict) -> dict[str, float]:
    """The MLflow metrics of an evaluation's ``summary`` (what evaluate returns): ``eval_l1``... for the model,
    ``baseline_identity_l1``... for its baselines, ``eval_hints_10_psnr``... for a hint model's curve (flat names:
    MLflow metrics are numbers, not trees)."""
    metrics = {f"eval_{metric}": summary[metric] for metric in summary["directions"]}
    for baseline, scores in summary["baselines"].items():
        metrics.update({f"baseline_{baseline}_{metric}": value for metric, value in scores.items()})
    curve = summary.get("hint_curve", {"counts": []})  # a hint model's: eval_hints_10_ciede2000...
    for index, count in enumerate(curve["counts"]):
        metrics.update({f"eval_hints_{count}_{metric}": curve[metric][index] for metric in curve["directions"]})
    return metrics


def log_evaluation(run_dir: Path, summary: dict, results_dir: Path, params: dict) -> bool:
    """Add ``params`` (evaluate's options), the ``evaluation_metrics`` of ``summary`` (what evaluate returns) and
    the results folder (images, metrics.csv, metrics.json, evaluation.json: what `pix2pix compare --mlflow-run`
    shows) to the latest run of the training in ``run_dir``, if it was tracked. A run that cannot be found (another
    machine or store), or that holds an evaluation made with other options (MLflow params cannot change), gets a new one."""
    marker = Path(run_dir) / MARKER
    if not marker.exists():
        return False
    from mlflow.entities import Metric, Param

    mlflow = connect()
    client = mlflow.MlflowClient()
    experiment = json.loads(marker.read_text())["experiment"]
    tags = run_tags(run_dir)
    run = latest_run(mlflow, experiment, tags)
    flat = flatten(params)
    logged = run.data.params if run else {}
    changed = [key for key, value in flat.items() if logged.get(key, value) != value]
    if run is None:
        print(f"warning: no MLflow run of {tags[RUN_DIR_TAG]} in experiment {experiment!r} at {mlflow.get_tracking_uri()}; logging the evaluation to a new run", file=sys.stderr)
    elif changed:
        print(f"warning: the MLflow run of {tags[RUN_DIR_TAG]} holds an evaluation with other {', '.join(changed)}; logging this one to a new run", file=sys.stderr)
    new_run = run is None or bool(changed)
    if new_run:
        run = create_run(mlflow, experiment, tags)
    run_id = run.info.run_id
    timestamp = int(mlflow.utils.time.get_current_time_millis())
    metrics = [Metric(key, float(value), timestamp, 0) for key, value in evaluation_metrics(summary).items()]
    # one batch, through the client: the training run's status stays as it is
    client.log_batch(run_id, metrics=metrics, params=[Param(key, value) for key, value in flat.items()])
    client.log_artifacts(run_id, str(results_dir), artifact_path=EVALUATION_ARTIFACTS)
    if new_run:
        client.set_terminated(run_id)
    return True


def download_run(run_id: str, folder: Path) -> tuple[str, Path, Path | None]:
    """Fetch what `pix2pix compare --mlflow-run` shows of the MLflow run ``run_id`` into ``folder``, a folder in one
    download each: the results folder that ``log_evaluation`` logged and the sample grids that training logged
    (``TrainingTracker.on_sample``). Returns (the run's name, the results folder, a training folder holding the
    grids in samples/, or None where the run logged none)."""
    from pix2pix.train.loop import SAMPLES_DIR

    mlflow = connect()
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
        if not client.list_artifacts(run_id, EVALUATION_ARTIFACTS):
            raise UserError(f"--mlflow-run {run_id}: no evaluation logged (run `pix2pix evaluate` on its tracked run folder)")
        results = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=EVALUATION_ARTIFACTS, dst_path=str(folder))
        sampled = bool(client.list_artifacts(run_id, SAMPLES_DIR))
        if sampled:
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SAMPLES_DIR, dst_path=str(folder))
    except MlflowException as exc:
        raise UserError(f"--mlflow-run {run_id}: {exc.message} (store {mlflow.get_tracking_uri()})") from None
    return run.info.run_name or run_id, Path(results), Path(folder) if sampled else None

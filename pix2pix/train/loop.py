"""The training loop every model runs: resumable to the bit, checkpointed atomically, preemption-safe.

A model (``Trainable``) brings its step, its state, its epochs' plans and its end of an epoch; the
loop brings the rest: the run folder (locked while training), seeding, checkpoints, SIGTERM / SIGINT, losses.csv, sample
grids, validation (val.csv, best.pt, early stopping), callbacks, and the batches, made ahead in a
background thread (``pix2pix.train.feeding``). Everything random (init, data order, jitter, dropout, noise) comes from the
seed and torch's generator state, which the checkpoint carries, so an interrupted and resumed run
ends with exactly the weights of an uninterrupted one. A run whose losses or weights stop being
finite ends there with ``TrainingDiverged``, its last good checkpoint kept.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import math
import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from pix2pix import checkpoint as ckpt
from pix2pix.data.images import save_image
from pix2pix.errors import UserError
from pix2pix.files import atomic_write_text, naming_os_errors
from pix2pix.train.distributed import Group
from pix2pix.train.feeding import BatchFeed

LOSSES_NAME = "losses.csv"
VAL_NAME = "val.csv"
LOCK_NAME = "train.lock"  # held (flock) by the process training in the folder; holds its PID


class TrainingInterrupted(Exception):
    """A signal stopped training after a checkpoint was written; ``signum`` says which."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"interrupted by signal {signum} at step {step}; checkpoint saved")
        self.signum, self.step = signum, step


class TrainingDiverged(UserError):
    """A loss or a weight stopped being finite: training ends, the last checkpoint (all finite) is kept."""


class RunFolderBusy(UserError):
    """Another process is training in the run folder."""


@dataclass
class StepReport:
    """What a callback sees after each step."""

    step: int
    epoch: int
    total_steps: int
    losses: dict[str, float]
    lr: float
    images_per_second: float
    data_wait_share: float  # of this process's training time so far, spent waiting for its next batch (``BatchFeed``)


@dataclass
class RunPlan:
    """What a callback sees once the model is built: the data, the steps, the networks' sizes, where they run."""

    images: int
    total_steps: int
    steps_per_epoch: int
    parameters: dict[str, int]  # per network: G, D
    device: str
    processes: int
    backend: str | None  # the process group's (nccl, gloo) under torchrun, else None


@dataclass
class Callbacks:
    """Hooks for progress bars and experiment trackers; all optional."""

    on_resume: Callable[[int, int], None] | None = None  # (checkpoint step, total steps), before the data is loaded
    on_plan: Callable[[RunPlan], None] | None = None  # after the model is built, before on_start
    on_start: Callable[[int, int], None] | None = None  # (start step, total steps)
    on_step: Callable[[StepReport], None] | None = None
    on_sample: Callable[[int, np.ndarray, Path], None] | None = None  # (step, a sample grid, the file the run folder keeps of it)
    on_validation: Callable[[int, dict[str, float], bool], None] | None = None  # (step, scores, whether best so far)
    sample_freq: int = 0  # steps between sample grids (and at the last step); 0: only those the model makes at an epoch's end


SAMPLES_DIR = "samples"  # in a run folder: step_NNNNNNN.png, a sample grid per --sample-freq steps
SAMPLE_NAME = re.compile(r"step_(\d+)\.png")  # its step


def sample_path(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / SAMPLES_DIR / f"step_{step:07d}.png"


@dataclass(frozen=True)
class Validation:
    """When the loop scores the model (``Trainable.validate``), by which score it keeps the best
    generator as best.pt, and after how many validations without a better one it stops."""

    metric: str
    higher_is_better: bool
    freq: int
    early_stop: int | None = None

    def improves(self, score: float, best: float | None) -> bool:
        return best is None or (score > best if self.higher_is_better else score < best)


def no_validation_yet() -> dict:
    """The validation state a checkpoint carries: the best score and its step, and the validations since."""
    return {"best_score": None, "best_step": None, "stale": 0}


class Trainable(Protocol):
    """One model as the loop drives it. ``state`` and ``load_state`` carry all it needs to resume."""

    loss_names: Sequence[str]  # the keys of ``train_step``'s losses: losses.csv's columns
    generator: nn.Module  # saved alone as generator.pt when training ends
    discriminator: nn.Module
    device: torch.device

    @property
    def lr(self) -> float: ...

    def epoch_plan(self, epoch: int) -> Any:
        """This process's order (and jitter) of an epoch, from the seed and ``epoch`` alone."""

    def batch(self, plan: Any, index: int) -> tuple[torch.Tensor, ...]: ...

    def train_step(self, *batch: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def end_epoch(self, epoch: int) -> np.ndarray | None:
        """After ``epoch`` epochs, on every process (a schedule's step): a sample grid to show, if the model makes one."""

    def sample(self) -> np.ndarray:
        """A grid of samples for people to watch training; leaves training bit-for-bit unchanged."""

    def validate(self) -> dict[str, float]:
        """Scores of the generator on held-out data (only called when ``fit`` is given a ``Validation``);
        leaves training bit-for-bit unchanged."""

    def finish(self) -> np.ndarray | None:
        """Once, on rank 0, after generator.pt: the model's last outputs, and a sample grid to show."""

    def state(self) -> dict: ...

    def load_state(self, state: dict) -> None: ...


def fit(
    build: Callable[[], Trainable],
    config: BaseModel,
    output_dir: Path,
    items: int,
    epochs: int,
    resume_keys: Sequence[str],
    callbacks: Callbacks | None = None,
    group: Group = Group(),
    done_name: str = ckpt.GENERATOR_NAME,
    inputs: str | None = None,
    validation: Validation | None = None,
) -> dict:
    """Train (or resume) the model ``build`` makes into ``output_dir``; returns a summary. Raises
    ``TrainingInterrupted``, ``TrainingDiverged`` and ``RunFolderBusy``.

    ``build`` runs right after torch is seeded, so one seed gives one set of initial weights, and
    only when there is training left to do. ``config`` gives seed, batch_size, max_steps,
    save_freq, log_freq and ``architecture()``. Each process of ``group`` takes its share of the
    ``items``, ``epochs`` times (or ``max_steps`` steps); rank 0 alone locks the folder, writes
    files and calls back. ``resume_keys``: options a resumed run must keep. ``done_name``: the
    file a finished run writes last. ``inputs``: a digest of what the run is computed from
    (`inputs_digest`); given, a checkpoint made from other inputs is deleted and training starts
    afresh (``summary["restarted"]``) instead of resuming it or refusing its options.
    ``validation``: validate every ``freq`` steps and at the end (rank 0 alone; val.csv), keep
    the best generator as best.pt and stop early as it says; its state is in the checkpoint.

    Every step's losses are checked, as they reach the CPU each step anyway (progress, averages);
    the weights and optimiser state at each checkpoint, before it is written. ``summary["data_wait_share"]``:
    the share of the training time this process spent waiting for batches (0.0 when it ran no step).
    """
    output_dir, callbacks = Path(output_dir), callbacks or Callbacks()
    with locked_run_folder(output_dir) if group.main else contextlib.nullcontext():
        checkpoint_path, losses_path, val_path = output_dir / ckpt.CHECKPOINT_NAME, output_dir / LOSSES_NAME, output_dir / VAL_NAME
        if validation and validation.early_stop and group.world_size > 1:
            raise UserError("early_stop: validation runs on rank 0 alone, so a multi-process run cannot stop early; train without it")
        per_process = -(-items // group.world_size)  # the length of an epoch plan's shard
        steps_per_epoch = -(-per_process // config.batch_size)
        total_steps = epochs * steps_per_epoch
        if config.max_steps:
            total_steps = min(total_steps, config.max_steps)
        summary = {"images": items, "steps_per_epoch": steps_per_epoch}

        saved = ckpt.load(checkpoint_path, fields=ckpt.RESUME_FIELDS) if checkpoint_path.exists() else None
        if saved is not None and inputs is not None and saved.get("inputs") != inputs:
            saved, summary["restarted"] = None, True
            if group.main:
                checkpoint_path.unlink()
        if saved is not None:
            _check_resumable(saved, config, checkpoint_path, resume_keys)
            if (saved["step"] >= total_steps or _stopped_early(saved, validation)) and (output_dir / done_name).exists():
                return {**summary, "steps": saved["step"], "epochs": saved["epoch"], "already_complete": True}
            if saved.get("world_size", 1) != group.world_size:  # the shards, and so the epochs, would differ
                raise UserError(f"{checkpoint_path}: this run was started with {saved.get('world_size', 1)} processes; resume it with as many")
            if callbacks.on_resume:
                callbacks.on_resume(saved["step"], total_steps)

        torch.manual_seed(config.seed)
        model = build()
        columns = ("step", "epoch", *model.loss_names, "lr")
        step, epoch, batch_index, checkpoint_step = 0, 0, 0, None
        validated = no_validation_yet()
        if saved is not None:
            with ckpt.restoring(checkpoint_path, "training state"):
                model.load_state(saved)
                set_rng_state(saved["rng"])
            step, epoch, batch_index = saved["step"], saved["epoch"], saved["batch_index"]
            validated = saved.get("validation", validated)
            checkpoint_step = step
            if group.main:
                for path in (losses_path, val_path):
                    _truncate_rows(path, step)
        elif group.main:  # an earlier run's, whose checkpoint is gone
            for path in (losses_path, val_path, output_dir / ckpt.BEST_NAME):
                if path.is_file():
                    path.unlink()

        def diverged(what: str) -> TrainingDiverged:
            kept = f"{checkpoint_path.name} of step {checkpoint_step} is kept" if checkpoint_step is not None else "no checkpoint was written"
            return TrainingDiverged(
                f"{output_dir}: step {step}: {what}; training diverged (lower lr or loss weights, in a new output folder); {kept}"
            )

        def save_checkpoint() -> None:
            nonlocal checkpoint_step
            state = model.state()
            if not _all_finite(state):  # every process holds the same weights: all stop here
                raise diverged("a weight or optimiser state is not finite")
            if group.main:
                ckpt.save(
                    {
                        "config": config.model_dump(mode="json"),
                        "architecture": config.architecture(),
                        **state,
                        "rng": rng_state(),
                        "step": step,
                        "epoch": epoch,
                        "batch_index": batch_index,
                        "world_size": group.world_size,
                        "validation": validated,
                        **({"inputs": inputs} if inputs is not None else {}),
                    },
                    checkpoint_path,
                )
            checkpoint_step = step

        def save_generator(path: Path, **extra: Any) -> None:
            """generator.pt, or best.pt in its format: the generator and the options that describe it."""
            ckpt.save(
                {
                    "config": config.model_dump(mode="json"),
                    "architecture": config.architecture(),
                    "generator": model.generator.state_dict(),
                    "step": step,
                    "epoch": epoch,
                    **extra,
                },
                path,
            )

        def validate() -> bool:
            """Score the model, log it, keep best.pt; whether training should stop early."""
            nonlocal validated
            scores = model.validate()
            score = scores[validation.metric]
            best = validation.improves(score, validated["best_score"])
            validated = {"best_score": score, "best_step": step, "stale": 0} if best else {**validated, "stale": validated["stale"] + 1}
            _append_row(val_path, {"step": step, "epoch": epoch + 1, **scores}, ("step", "epoch", *scores))
            if best:
                save_generator(output_dir / ckpt.BEST_NAME, validation={validation.metric: score})
            if callbacks.on_validation:
                callbacks.on_validation(step, scores, best)
            return validation.early_stop is not None and validated["stale"] >= validation.early_stop

        if group.main:
            atomic_write_text(output_dir / "options.json", config.model_dump_json(indent=2) + "\n")
        if callbacks.on_plan:
            parameters = {name: sum(p.numel() for p in network.parameters()) for name, network in (("G", model.generator), ("D", model.discriminator))}
            callbacks.on_plan(RunPlan(items, total_steps, steps_per_epoch, parameters, str(model.device), group.world_size, group.backend))
        if group.main:
            _drop_samples_after(output_dir, step)
        if callbacks.on_start:
            callbacks.on_start(step, total_steps)

        def show(grid: np.ndarray | None) -> None:
            """Keep a sample grid in the run folder, so that it replays training (`pix2pix compare`) without
            MLflow, and hand the file to ``on_sample``. Rank 0 alone: the others have no callbacks."""
            if grid is not None and group.main:
                path = sample_path(output_dir, step)
                save_image(grid, path)
                if callbacks.on_sample:
                    callbacks.on_sample(step, grid, path)

        window, window_steps = dict.fromkeys(model.loss_names, 0.0), 0
        last_time, last_step, images_per_second = time.perf_counter(), step, 0.0
        stopped_early = saved is not None and _stopped_early(saved, validation)  # and its generator.pt is gone
        steps_left = 0 if stopped_early else total_steps - step
        with _StopSignals() as stop, BatchFeed(model, epoch, batch_index, steps_per_epoch, steps_left) as feed:
            fed_since, data_wait_share = time.perf_counter(), 0.0
            while step < total_steps and not stopped_early:
                while batch_index < steps_per_epoch and step < total_steps:
                    batch = feed.next()
                    losses = model.train_step(*batch)
                    batch_index, step, window_steps = batch_index + 1, step + 1, window_steps + 1
                    values, stopping = group.step_summary(losses, stop.received is not None)
                    for name, value in values.items():  # the same on every process: all stop at this step
                        if not math.isfinite(value):
                            raise diverged(f"{name} is {value}")
                    window = {name: window[name] + values[name] for name in model.loss_names}
                    now = time.perf_counter()  # after step_summary has brought the losses to the CPU: the step is done
                    data_wait_share = feed.waited / (now - fed_since)
                    if now - last_time > 0.5:
                        images_per_second = (step - last_step) * len(batch[0]) * group.world_size / (now - last_time)
                        last_time, last_step = now, step
                    if step % config.log_freq == 0 or step == total_steps:
                        row = {"step": step, "epoch": epoch + 1, **{k: v / window_steps for k, v in window.items()}, "lr": model.lr}
                        if group.main:
                            _append_row(losses_path, row, columns)
                        window, window_steps = dict.fromkeys(model.loss_names, 0.0), 0
                    if callbacks.on_step:
                        callbacks.on_step(StepReport(step, epoch + 1, total_steps, values, model.lr, images_per_second, data_wait_share))
                    if group.main and callbacks.sample_freq and (step % callbacks.sample_freq == 0 or step == total_steps):
                        show(model.sample())
                    if validation and group.main and (step % validation.freq == 0 or step == total_steps):
                        stopped_early = validate()  # before a checkpoint of this step, which then holds its result
                    if step % config.save_freq == 0 and step < total_steps and not stopped_early:
                        save_checkpoint()
                    if stopping:
                        save_checkpoint()
                        group.barrier()  # no process exits before the checkpoint is whole
                        raise TrainingInterrupted(stop.received or signal.SIGTERM, step)
                    if stopped_early:
                        break
                if batch_index >= steps_per_epoch:
                    epoch, batch_index = epoch + 1, 0
                    show(model.end_epoch(epoch))
            save_checkpoint()

        if group.main:
            save_generator(output_dir / ckpt.GENERATOR_NAME)
            grid = model.finish()
            if batch_index:  # at an epoch's end it was just shown
                show(grid)
        if validation and validated["best_step"] is not None:
            summary["best"] = {"step": validated["best_step"], validation.metric: validated["best_score"]}
        summary["data_wait_share"] = data_wait_share
        return {**summary, "steps": step, "epochs": epoch, **({"stopped_early": validated["stale"]} if stopped_early else {})}


def _drop_samples_after(output_dir: Path, step: int) -> None:
    """Delete the sample grids of steps after ``step``, as losses.csv is truncated: a resumed run keeps its
    earlier frames, a fresh one starts with none."""
    for path in (Path(output_dir) / SAMPLES_DIR).glob("step_*.png"):
        if (match := SAMPLE_NAME.fullmatch(path.name)) and int(match.group(1)) > step:
            path.unlink()


def inputs_digest(config: BaseModel, data: Sequence[Path], code: Sequence[tuple[str, Path]], validation: Sequence[Path] = ()) -> str:
    """sha256 of what a run computes from: its options, its data and validation files (names and
    bytes) and its code (``(name, path)`` of each source file). The same for the same inputs in any folder or clone."""
    digest = hashlib.sha256(config.model_dump_json().encode())
    named = {"data": [(path.name, path) for path in data], "val": [(path.name, path) for path in validation], "code": code}
    for kind, files in named.items():
        for name, path in sorted(files):
            digest.update(f"\0{kind}\0{name}\0".encode("utf-8", "surrogateescape"))
            with path.open("rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _StopSignals:
    """Turn SIGTERM / SIGINT into a flag the loop checks between steps (cluster preemption)."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def locked_run_folder(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock file while training in it: a second training there fails at once, naming this PID.

    flock's lock dies with the process, however it ends. The file is removed on the way out, so it
    stays out of the run's outputs (a killed run leaves it behind, unlocked); so is ``folder`` if
    this made it and nothing was written.
    """
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise RunFolderBusy(
                f"{folder}: another training (PID {holder}) is running in this folder; wait for it or use another output folder"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                break
        os.close(descriptor)  # its holder removed the file as we opened it: lock the one there now
    try:
        with naming_os_errors(path):
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking: whoever opened it then sees it gone and retries
        os.close(descriptor)
        if made:
            with contextlib.suppress(OSError):  # not empty: this run wrote something
                folder.rmdir()


def _all_finite(state: Any) -> bool:
    """Whether every floating-point tensor in a (nested) state dict is finite."""
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(state.isfinite().all())
    if isinstance(state, dict):
        return all(_all_finite(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return all(_all_finite(value) for value in state)
    return True


def _check_resumable(saved: dict, config: BaseModel, path: Path, keys: Sequence[str]) -> None:
    """An option the checkpoint does not record (it predates it) was at its default."""
    defaults = {key: field.default for key, field in type(config).model_fields.items()}
    old = {**defaults, **saved.get("config", {})}
    changed = [f"{k} {old.get(k)!r} -> {getattr(config, k)!r}" for k in keys if old.get(k) != getattr(config, k)]
    if changed:
        raise UserError(
            f"{path}: this run was started with other options ({'; '.join(changed)}); "
            "use a new output folder or the original options"
        )


def _stopped_early(saved: dict, validation: Validation | None) -> bool:
    """Whether the checkpoint's run stopped early, by the patience asked for now (a longer one trains on)."""
    return bool(validation and validation.early_stop and saved.get("validation", no_validation_yet())["stale"] >= validation.early_stop)


def _truncate_rows(path: Path, up_to_step: int) -> None:
    """Keep the rows of a per-step CSV (losses.csv, val.csv) up to the resumed step (later rows belong to lost work)."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if int(row["step"]) <= up_to_step]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=reader.fieldnames or ["step"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _append_row(path: Path, row: dict, columns: Sequence[str]) -> None:
    new = not path.exists()
    with naming_os_errors(path), path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

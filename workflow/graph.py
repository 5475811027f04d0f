"""dvc.yaml as Snakemake rules: one definition of the pipeline for both `dvc repro` and `snakemake`.

DVC itself reads dvc.yaml (``foreach`` and ``${...}`` resolved from params.yaml), so the two tools
run the same stages with the same commands, deps, outs and params. Snakemake-only hints live in a
stage's ``meta: snakemake:``, which DVC ignores:

- ``resources``: what the job asks the scheduler for (``gpu: 1`` becomes ``sbatch --gpus=1``).
- ``torchrun: true``: given ``gpu: N`` > 1, the command runs as N DDP processes under torchrun.
- ``resumable: FILE``: the stage's outs are the files of one run folder that can resume, FILE among
  them, written last. Snakemake deletes a job's outputs before it starts and after it fails, so the
  rule declares FILE alone and the folder's other files (checkpoint.pt) outlive a failed attempt for
  the retry. Work that is not a retry of the same job (another command, params or inputs) starts
  from an empty folder.

An out is a folder unless its name has an extension; its DVC options (``push: false``) are DVC's
alone. A dep inside another stage's out (a subfolder) is that out, as in DVC.

What is stale is DVC's call (content hashes, params, command), not Snakemake's (mtimes, which a
checkout or a touch changes without changing content): each rule has one more input, its stage's
stamp, which `Graph.mark` makes new exactly when the stage or one it depends on is stale by
`dvc status`, and the deps of the other rules are ``ancient``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent  # the venv's pix2pix, torchrun and dvc, on PATH for every command
RESUME_DIR = Path(".snakemake") / "resume"  # one stamp per resumable job under way: what it is computing
STALE_DIR = Path(".snakemake") / "dvc"  # one stamp per stage, an input of its rule: see Graph.mark
# What `snakemake --report` shows of a report stage's folder (by the stage's name before ``@``): files of
# the folder, each pattern's {view} naming what it is for the caption, workflow/report/NAME.rst.
REPORT_VIEWS = {
    "report": ["{view,losses|validation}.png", "{view,metrics}.csv", "images/{image}-{view,outputs}.png"],
    "report_cgan": ["{view,grid|losses}.png", "{view,metrics}.json"],
}


@dataclass(frozen=True)
class Stage:
    """One DVC stage, resolved."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...]  # dotted keys of params.yaml
    outs: tuple[str, ...]
    hints: Mapping[str, Any] = field(default_factory=dict)  # meta: snakemake:

    @property
    def log(self) -> str:
        return f"logs/{self.name}.log"

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.hints.get("resources", {}))

    @property
    def resumable(self) -> str | None:
        """The one out Snakemake tracks of a resumable stage: its marker, in the run folder of all its outs."""
        marker = self.hints.get("resumable")
        if not marker:
            return None
        folders = {posixpath.dirname(out) for out in self.outs}
        path = posixpath.join(min(folders), marker)
        if len(folders) != 1 or path not in self.outs:
            raise ValueError(f"stage {self.name}: a resumable stage's outs are files of one run folder, {marker} among them")
        return path

    def tracked(self) -> list[str]:
        """What Snakemake checks and deletes for this stage's outs."""
        return [self.resumable] if self.resumable else list(self.outs)


class Graph:
    """The stages and how Snakemake sees their files."""

    def __init__(self, stages: Iterable[Stage]):
        self.stages = {stage.name: stage for stage in stages}
        self._tracked = {out: stage.resumable or out for stage in self.stages.values() for out in stage.outs}
        self._producers = {out: stage.name for stage in self.stages.values() for out in stage.outs}

    @property
    def targets(self) -> list[str]:
        """What Snakemake tracks of every out: what `snakemake` builds by default, like `dvc repro`."""
        return list(dict.fromkeys(self._tracked.values()))

    def inputs(self, stage: Stage, rerun: bool = False) -> list[str]:
        """The deps, each one that lies in an out replaced by what Snakemake tracks of that out, then the
        stage's stamp. The deps of a stage that does not rerun (see `mark`) are ancient: their dates
        rerun nothing. Those of one that does are not: Snakemake reruns a job after the jobs it depends
        on only through deps that are not ancient."""
        from snakemake.io import ancient

        deps = dict.fromkeys(self._producer_path(dep) for dep in stage.deps)
        return [*(deps if rerun else map(ancient, deps)), str(STALE_DIR / stage.name)]

    def outputs(self, stage: Stage) -> list[str]:
        """What the rule declares: the tracked outs, those of a report stage marked for `snakemake --report`."""
        from snakemake.io import directory, report

        kind, _, experiment = stage.name.partition("@")
        outputs = [path if Path(path).suffix else directory(path) for path in stage.tracked()]
        if kind in REPORT_VIEWS:
            caption = f"workflow/report/{kind}.rst"
            return [report(out, caption=caption, category=experiment, subcategory="{view}", patterns=REPORT_VIEWS[kind]) for out in outputs]
        return outputs

    def params(self, stage: Stage, config: Mapping) -> dict[str, Any]:
        """The params.yaml values the stage lists: part of what a retry must match to resume (_fingerprint)."""
        return {key: _lookup(config, key) for key in stage.params}

    def command(self, name: str, wildcards, threads: int, resources, venv: bool = True) -> str:
        """The rule's shell command: the stage's own, its output to the log, as `snakemake -n -p` prints it.
        A params function of the rule, so Snakemake passes the job's wildcards (none), threads and resources.

        ``venv``: the venv's bin first on PATH (not when Snakemake runs the job in its conda env). The
        rule's CPUs set the thread count; a ``torchrun`` stage with several GPUs starts one process per
        GPU; a resumable stage keeps or empties its run folder first (`python -m workflow.job`) and
        drops its resume stamp once it succeeds.
        """
        stage = self.stages[name]
        command = stage.cmd
        processes = int(resources.get("gpu", 1))
        if stage.hints.get("torchrun") and processes > 1:
            command = f"torchrun --standalone --nproc_per_node {processes} --no-python {command}"
        command = f"{command} > {shlex.quote(stage.log)} 2>&1"
        if stage.resumable:
            command = f"python -m workflow.job resume {shlex.quote(name)} && {command} && rm {shlex.quote(str(RESUME_DIR / name))}"
        exports = [f'PATH={shlex.quote(str(BIN))}:"$PATH"'] if venv else []
        cpus = int(resources.get("cpus_per_task", 0))
        if cpus > threads:  # Snakemake sets OMP_NUM_THREADS to the rule's threads, 1 unless a job asks for more
            exports.append(f"OMP_NUM_THREADS={cpus}")
        return f"export {' '.join(exports)}; {command}" if exports else command

    def resume(self, name: str, config: Mapping) -> None:
        """Before a resumable stage runs: keep its run folder for a retry of the same work, else empty it."""
        stage = self.stages[name]
        _resume_or_restart(stage, _fingerprint({"cmd": stage.cmd, **self.params(stage, config)}, stage.deps))

    def downstream(self, names: Iterable[str]) -> set[str]:
        """The stages named and every stage that depends on one of them, directly or not."""
        found = set(names)
        while more := {
            stage.name for stage in self.stages.values() if stage.name not in found and any(self._producer(dep) in found for dep in stage.deps)
        }:
            found |= more
        return found

    def mark(self, stale: Mapping[str, Any]) -> set[str]:
        """Write every stage's stamp and return the stages to rerun: those that `dvc status` finds stale
        (``stale``: its answer) and those downstream. Theirs has new content, so that it is newer than
        the outputs and unlike the checksum Snakemake recorded; any other is dated 1970, newer than nothing.
        """
        rerun = self.downstream(stale.keys() & self.stages.keys())
        STALE_DIR.mkdir(parents=True, exist_ok=True)
        for name in self.stages:
            stamp = STALE_DIR / name
            if name in rerun:
                stamp.write_text(json.dumps({"dvc status": stale.get(name, "a stage upstream is stale"), "at": time.time_ns()}) + "\n")
            else:
                stamp.touch()
                os.utime(stamp, (0, 0))
        return rerun

    def commit(self, names: Iterable[str]) -> None:
        """Record what a Snakemake run brought up to date in dvc.lock (no recomputing), so DVC agrees."""
        stages = sorted(set(names) & self.stages.keys())
        if stages:
            subprocess.run([str(BIN / "dvc"), "commit", "--force", "--quiet", *stages], check=True)

    def _out_of(self, dep: str) -> str | None:
        """The out that is dep or holds it, if a stage makes it."""
        return next((out for out in self._tracked if dep == out or dep.startswith(f"{out}/")), None)

    def _producer_path(self, dep: str) -> str:
        out = self._out_of(dep)
        return self._tracked[out] if out else dep

    def _producer(self, dep: str) -> str | None:
        out = self._out_of(dep)
        return self._producers[out] if out else None


def load(root: str | Path = ".") -> Graph:
    """The stages of ``root/dvc.yaml`` as DVC resolves them."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    stages = []
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            if not stage.cmd:  # a `dvc add`-ed input, not a stage to run
                continue
            params = [dep for dep in stage.deps if isinstance(dep, ParamsDependency)]
            if any(dep.def_path != "params.yaml" for dep in params):
                raise ValueError(f"stage {stage.name}: the Snakefile knows params.yaml only")
            stages.append(
                Stage(
                    name=stage.name,
                    cmd=stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd),
                    deps=tuple(dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)),
                    params=tuple(key for dep in params for key in dep.params),
                    outs=tuple(out.def_path for out in stage.outs),
                    hints=(stage.meta or {}).get("snakemake", {}),
                )
            )
    return Graph(stages)


def stale(root: str | Path = ".") -> dict[str, Any]:
    """`dvc status` of ``root``: what DVC would rerun (changed deps, outs, params or command) and why."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.status()


def create_tracking_store() -> None:
    """Create MLflow's local database before the jobs do: trainings that start together and all find
    no mlflow.db race to create its tables, and all but one fail. A tracking server needs nothing."""
    from stages.tracking import connect

    mlflow = connect()  # the repository's store, the one the jobs find
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        mlflow.MlflowClient().search_experiments(max_results=1)


def _lookup(config: Mapping, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"params.yaml has no {key!r}")
        node = node[part]
    return node


def _fingerprint(params, inputs: Iterable[str]) -> str:
    """What makes two attempts the same work: the command and params, and every input file's size and mtime."""
    files = []
    for name in inputs:
        path = Path(name)
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                info = file.stat()
                files.append((str(file), info.st_size, info.st_mtime_ns))
    text = json.dumps([sorted((key, repr(value)) for key, value in params.items()), files])
    return hashlib.sha256(text.encode()).hexdigest()


def _resume_or_restart(stage: Stage, fingerprint: str) -> Path:
    """Keep the run folder a failed attempt of this same work left (training resumes), else empty it.

    Returns the stamp that says what the folder is being computed for; remove it once the job succeeds.
    """
    stamp = RESUME_DIR / stage.name
    if not (stamp.is_file() and stamp.read_text() == fingerprint):
        shutil.rmtree(posixpath.dirname(stage.resumable), ignore_errors=True)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
    return stamp

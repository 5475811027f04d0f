"""The pipeline's definitions, checked without running it: params.yaml validation, dvc.yaml's lists of
experiments, what stays off the DVC remote, the Snakefile's config schema and its retry bookkeeping.

The pipeline run for real: tests/integration/test_pipeline.py (DVC), test_snakemake.py, test_slurm.py.
"""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda p: p["experiments"]["facades"]["train"].update(lrr=1), "experiments.facades.train.lrr: unknown key"),
        (lambda p: p["experiments"]["facades"]["train"].update(ngf="wide"), "experiments.facades.train.ngf: 'wide' is not allowed"),
        (lambda p: p["experiments"]["facades"]["train"].update(lr=-1), "experiments.facades.train.lr: -1 is not allowed (Input should be greater than 0)"),
        (lambda p: p["experiments"]["facades"]["train"].update(patch=71), "experiments.facades.train.patch: 71 is not allowed"),
        (lambda p: p["experiments"]["facades"]["train"].update(norm="banana"), "experiments.facades.train.norm: 'banana' is not allowed"),
        (lambda p: p["experiments"]["facades"]["train"].update(batch_size=0), "experiments.facades.train.batch_size: 0 is not allowed"),
        (lambda p: p["experiments"]["facades"]["train"].update(crop_size=128), "experiments.facades.train: crop_size 128 is larger than load_size 72"),
        (lambda p: p["experiments"]["facades"]["train"].update(patch=286), "experiments.facades.train: crop_size 64 is too small for a 286x286 PatchGAN (needs at least 96 px)"),
        (lambda p: p["experiments"]["facades"]["train"].update(max_epochs=20), "experiments.facades.train: max_epochs 20 is beyond the schedule (n_epochs 10 + n_epochs_decay 5)"),
        (lambda p: p["split"]["facades"].update(val_frac=0.0, test_frac=0.1), "split.facades: --train_frac + --val_frac + --test_frac must be 1, got 0.9"),
        (lambda p: p["experiments"]["facades"]["train"].update(input_dir="x"), "experiments.facades.train.input_dir: unknown key"),
        (lambda p: p["experiments"]["facades"]["evaluate"].update(eval_mode="test"), "experiments.facades.evaluate.eval_mode: 'test' is not allowed"),
        (lambda p: p["split"]["facades"].update(test_frac=0.5), "split.facades: --train_frac + --val_frac + --test_frac must be 1, got 1.5"),
        (lambda p: p["cgan"]["digits-cgan"].update(seed=2**40), "cgan.digits-cgan.seed: 1099511627776 is not allowed"),
        (lambda p: p.update(blanks={}), "blanks: unknown key"),
    ],
)
def test_invalid_params_are_one_line_naming_the_key(tmp_path, edit, fragment, assert_user_error, repo_root, run_cli):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = run_cli("stages.train", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "--params", str(path), "--section", "experiments.facades.train")
    assert_user_error(result, fragment)


def test_report_index_plots_and_metrics_list_every_experiment_of_params(repo_root):
    """The index stage, plots and metrics name experiments explicitly: keep them in step with params.yaml."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    pipeline = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    index = pipeline["stages"]["report_index"]
    plots = {next(iter(entry)) for entry in pipeline["plots"]}
    for name in [*params["experiments"], *params["cgan"]]:
        assert f"{name}=reports/{name}" in index["cmd"] and f"reports/{name}" in index["deps"]
        assert f"models/{name}/losses.csv" in plots
    assert pipeline["stages"]["evaluate"]["do"]["plots"] == ["results/${key}/images"]  # an out of its own: see dvc.yaml
    assert pipeline["metrics"] == [*(f"results/{name}/metrics.json" for name in params["experiments"]), *(f"models/{name}/metrics.json" for name in params["cgan"])]


def test_checkpoints_stay_off_the_remote_and_no_stage_reads_them(repo_root):
    """checkpoint.pt (686 MB at 256 px) is not pushed, so a machine that pulled lacks it: a stage
    that read it, or its whole run folder, would rerun after `dvc pull --allow-missing`."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo:
        stages = list(repo.index.stages)
    runs = [stage for stage in stages if stage.name.partition("@")[0] in ("train", "cgan")]
    checkpoints = set()
    for stage in runs:
        unpushed = [out.def_path for out in stage.outs if not out.can_push]
        assert [path.rpartition("/")[2] for path in unpushed] == ["checkpoint.pt"], stage.name
        checkpoints |= set(unpushed)
    assert runs and len(checkpoints) == len(runs)
    folders = {path.rpartition("/")[0] for path in checkpoints}
    for stage in stages:
        deps = {dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)}
        assert not deps & (folders | checkpoints), f"{stage.name}: name the files of the run folder it reads"


def test_every_dep_is_an_out_or_lies_in_one_never_a_folder_around_outs(repo_root, workflow_module):
    """A folder around outs (results/NAME around evaluate's files and images) also holds what no stage tracks
    (pix2pix's marker), which a `dvc pull` does not bring: its hash would differ and rerun the stage on every
    new machine. Snakemake, too, knows a dep only as an out or a path in one (workflow/graph.py)."""
    graph = workflow_module("graph").load(repo_root)
    outs = [out for stage in graph.stages.values() for out in stage.outs]
    for stage in graph.stages.values():
        for dep in stage.deps:
            around = [out for out in outs if out.startswith(f"{dep}/")]
            assert not around, f"{stage.name}: dep {dep} holds the outs {around}: name them"


def test_committed_schema_is_the_generated_one(repo_root, workflow_module):
    committed = json.loads((repo_root / "workflow" / "schemas" / "params.schema.json").read_text())
    assert committed == workflow_module("schema").params_schema(), "run: python -m workflow.schema > workflow/schemas/params.schema.json"


def test_a_run_folder_is_kept_only_for_a_retry_of_the_same_work(tmp_path, monkeypatch, workflow_module):
    graph_module = workflow_module("graph")
    monkeypatch.chdir(tmp_path)
    stage = graph_module.Stage("train@x", "cmd", (), (), ("models/x/generator.pt", "models/x/checkpoint.pt"), {"resumable": "generator.pt"})
    folder = tmp_path / "models" / "x"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_text("finished work")
    stamp = graph_module._resume_or_restart(stage, "work a")
    assert not folder.exists()  # new work starts from scratch
    folder.mkdir()
    (folder / "checkpoint.pt").write_text("a failed attempt")
    assert graph_module._resume_or_restart(stage, "work a") == stamp and (folder / "checkpoint.pt").exists()
    graph_module._resume_or_restart(stage, "work b")
    assert not folder.exists()
    with pytest.raises(ValueError, match="files of one run folder"):
        graph_module.Stage("train@y", "cmd", (), (), ("models/y/generator.pt", "models/y/samples/a.png"), {"resumable": "generator.pt"}).tracked()


def test_a_stage_reruns_when_dvc_finds_it_or_one_upstream_stale(tmp_path, monkeypatch, workflow_module):
    """The stamps of workflow/graph.py: new for what `dvc status` lists and what depends on it, else dated 1970."""
    from snakemake.io import is_flagged

    graph_module = workflow_module("graph")
    monkeypatch.chdir(tmp_path)
    stage = graph_module.Stage
    graph = graph_module.Graph([
        stage("download", "cmd", ("lib.py",), (), ("data/raw",)),
        stage("split", "cmd", ("data/raw/photos", "lib.py"), (), ("data/split",)),
        stage("train", "cmd", ("data/split", "lib.py"), (), ("models/x/generator.pt", "models/x/losses.csv", "models/x/checkpoint.pt"), {"resumable": "generator.pt"}),
        stage("evaluate", "cmd", ("models/x/losses.csv",), (), ("results/x",)),
        stage("other", "cmd", ("lib.py",), (), ("models/y",)),
    ])  # fmt: skip
    inputs = graph.inputs(graph.stages["evaluate"])
    assert inputs == ["models/x/generator.pt", ".snakemake/dvc/evaluate"]  # a run folder's file: Snakemake knows its marker only
    assert graph.targets.count("models/x/generator.pt") == 1 and "models/x/checkpoint.pt" not in graph.targets
    assert is_flagged(inputs[0], "ancient") and not is_flagged(inputs[1], "ancient")  # dates of deps rerun nothing
    assert not any(is_flagged(path, "ancient") for path in graph.inputs(graph.stages["evaluate"], rerun=True))
    assert graph.downstream({"split"}) == {"split", "train", "evaluate"}

    def renewed(stale) -> set[str]:
        rerun = graph.mark(stale)
        assert rerun == {name for name in graph.stages if (tmp_path / ".snakemake" / "dvc" / name).stat().st_mtime > 0}
        return rerun

    status = {"split": [{"changed deps": {"lib.py": "modified"}}], "data.dvc": [{"changed outs": {"data": "modified"}}]}
    assert renewed(status) == {"split", "train", "evaluate"}
    stamp = (tmp_path / ".snakemake" / "dvc" / "split").read_text()
    assert renewed(status) == {"split", "train", "evaluate"} and (tmp_path / ".snakemake" / "dvc" / "split").read_text() != stamp
    assert renewed({}) == set()

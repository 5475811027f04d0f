"""dvc.yaml's code deps: each stage lists exactly the code its command runs (workflow/deps.py).

Checked on the deps DVC resolves, so a module left out, a file that is not there or no longer
run, and a wrong per-experiment path all fail. The same edits run for real: tests/integration/test_deps.py.
"""

from __future__ import annotations

import yaml

from stages.code_deps import code, experiment_code, source_files


def test_each_stage_lists_exactly_the_code_its_command_runs(repo_root, workflow_module):
    deps = workflow_module("deps")
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    pipeline = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    experiment_stages = {name for name, stage in pipeline["stages"].items() if stage.get("foreach") == deps.EXPERIMENTS}
    for stage in workflow_module("graph").load(repo_root).stages.values():
        group, _, key = stage.name.partition("@")
        module = deps.command_module(stage.cmd)
        wanted = experiment_code(module, bool(params["experiments"][key]["train"].get("lab_colorization"))) if group in experiment_stages else code(module)
        listed = {dep for dep in stage.deps if deps.is_code(dep)}
        assert listed == wanted, f"{stage.name}: missing {sorted(wanted - listed)}, not run {sorted(listed - wanted)}; run: python -m workflow.deps"
        assert all((repo_root / dep).exists() for dep in listed)


def test_generator_leaves_the_committed_dvc_yaml_as_it_is(repo_root, workflow_module):
    text = (repo_root / "dvc.yaml").read_text()
    assert workflow_module("deps").rewrite(text, yaml.safe_load((repo_root / "params.yaml").read_text())) == text


def test_walk_follows_lazy_imports_from_the_stage_module_only(workflow_module):
    deps = workflow_module("deps")
    train = deps.code("stages.train")
    assert "pix2pix/train/pix2pix_model.py" in train  # imported inside the command function
    assert "stages/cli.py" not in train and "stages/evaluate.py" not in train  # cli.py imports every stage only to register it
    assert "pix2pix/nn/device.py" not in deps.code("stages.download")  # pix2pix.options' Flags, not DeviceOptions' lazy import


def test_lab_code_and_templates_are_deps_of_their_stages_only(repo_root, workflow_module):
    stages = workflow_module("graph").load(repo_root).stages
    lab = {name for name, stage in stages.items() if "pix2pix/color.py" in stage.deps}
    def using(template: str) -> set[str]:
        return {name for name, stage in stages.items() if f"pix2pix/apps/templates/{template}" in stage.deps}

    assert lab == {"train@colorization", "evaluate@colorization"}
    reports = {name for name in stages if name.startswith("report")}
    assert using("report.css") == reports | {"compare"}  # base.html.j2 inlines it: compare's page extends base
    assert using("pager.js") == reports and using("compare.js") == {"compare"}
    assert not using("demo.js")  # the demo server's page: no stage renders it


def test_a_checkpoint_digests_exactly_the_code_dvc_reruns_its_training_for(repo_root, workflow_module):
    """--restart-if-changed keeps a digest of the code in checkpoint.pt, a DVC output: a file outside the stage's deps
    in it would change the checkpoint when DVC reruns nothing (a stale dvc.lock), a dep left out would resume a
    finished run after its code changed."""
    stages = workflow_module("graph").load(repo_root).stages
    for name in ("train@facades", "train@colorization"):
        listed = {dep for dep in stages[name].deps if workflow_module("deps").is_code(dep)}
        digested = {file for file, _ in source_files(experiment_code("stages.train", name.endswith("colorization")))}
        expanded = {file for file, _ in source_files(listed)}
        assert digested == expanded, name
    assert "pix2pix/infer/reference_import.py" not in digested and "pix2pix/train/loop.py" in digested


def test_editing_code_training_does_not_run_leaves_the_digest_as_it_is(repo_root, tiny_config, tmp_path, monkeypatch):
    import shutil

    from pix2pix.train.config import TrainConfig
    from pix2pix.train.loop import inputs_digest
    from stages import code_deps

    for package in code_deps.PACKAGES:
        shutil.copytree(repo_root / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code_deps, "ROOT", tmp_path)
    config = TrainConfig(**tiny_config)

    def digest():
        return inputs_digest(config, [], source_files(experiment_code("stages.train", config.lab_colorization)))

    before = digest()
    for unrun in ("pix2pix/infer/reference_import.py", "pix2pix/color.py", "stages/evaluate.py"):
        with open(tmp_path / unrun, "a") as handle:
            handle.write("# edited\n")
    assert digest() == before
    with open(tmp_path / "pix2pix/train/loop.py", "a") as handle:
        handle.write("# edited\n")
    assert digest() != before


def test_walk_finds_the_templates_a_command_names_and_what_they_extend_include_and_inline():
    templates = {path.rpartition("/")[2] for path in code("stages.serve") if path.startswith("pix2pix/apps/templates/")}
    assert templates == {"demo.html.j2", "demo.css", "demo.js"}  # named in serve.py; inlined by demo.html.j2
    compare = {path.rpartition("/")[2] for path in code("stages.compare") if path.startswith("pix2pix/apps/templates/")}
    assert {"compare.html.j2", "base.html.j2", "report.css", "compare.css", "compare.js"} == compare  # extends base, which inlines report.css

"""dvc.yaml's code deps: each stage lists exactly the code its command runs (workflow/deps.py).

Checked on the deps DVC resolves, so a module left out, a file that is not there or no longer
run, and a wrong per-experiment path all fail. The same edits run for real: tests/integration/test_deps.py.
"""

from __future__ import annotations

import yaml


def test_each_stage_lists_exactly_the_code_its_command_runs(repo_root, workflow_module):
    deps = workflow_module("deps")
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    pipeline = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    experiment_stages = {name for name, stage in pipeline["stages"].items() if stage.get("foreach") == deps.EXPERIMENTS}
    for stage in workflow_module("graph").load(repo_root).stages.values():
        group, _, key = stage.name.partition("@")
        wanted = deps.code(deps.command_module(stage.cmd))
        if group in experiment_stages and not params["experiments"][key]["train"].get("lab_colorization"):
            wanted -= {deps.LAB_CODE}
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
    templates = {name for name, stage in stages.items() if "pix2pix/apps/templates" in stage.deps}
    assert lab == {"train@colorization", "evaluate@colorization"}
    assert templates == {name for name in stages if name.startswith("report")}

"""The `pix2pix` command exposes every stage; each stage also runs as `python -m stages.NAME`."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stages.cli import STAGES


def test_console_script_lists_every_stage():
    executable = shutil.which("pix2pix", path=str(Path(os.sys.executable).parent)) or shutil.which("pix2pix")
    assert executable, "the pix2pix console script is not installed"
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    for name, aliases in STAGES:
        for command in (name, *aliases):
            assert f" {command.replace('_', '-')} " in result.stdout, command


@pytest.mark.parametrize("name", [name for name, _ in STAGES])
def test_each_stage_runs_as_a_module_with_help(name, run_cli):
    result = run_cli(f"stages.{name}", "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout and "--help" in result.stdout


def test_help_shows_one_spelling_per_option_in_panels(run_cli):
    text = run_cli("stages.train", "--help").stdout
    for option in ("--direction", "--lab-colorization", "--max-epochs", "--input-dir", "--output-dir", "--no-flip", "--lr"):
        assert option in text, option
    for hidden in ("--which_direction", "--which-direction", "--input_dir", "--niter", "--lambda-L1"):
        assert hidden not in text, hidden
    panels = [panel for panel in ("Paths", "Data", "Model", "Loss", "Optimiser", "Schedule", "Checkpoints", "Speed", "Tracking") if f"─ {panel} ─" in text]
    assert len(panels) == 9 and sorted(panels, key=text.index) == panels


@pytest.mark.parametrize(
    "spelling",
    [
        ["--which_direction", "BtoA", "--lab_colorization", "--max_epochs", "3", "--no_flip", "--niter", "1", "--lambda_L1", "10"],
        ["--which-direction", "BtoA", "--lab-colorization", "--max-epochs", "3", "--no-flip", "--n-epochs", "1", "--l1-weight", "10"],
        ["--direction", "BtoA", "--lab-colorization", "--max-epochs", "3", "--no-flip", "--n_epochs", "1", "--l1_weight", "10"],
    ],
)
def test_original_and_dashed_spellings_give_the_same_options(tmp_path, spelling, run_cli):
    """Every spelling reaches the command: it fails on the missing folder, after the options were read."""
    result = run_cli("stages.train", "--input_dir", str(tmp_path / "none"), "--output_dir", str(tmp_path / "run"), *spelling)
    assert result.returncode == 2 and "not a directory" in result.stderr, result.stderr


def test_a_bad_option_value_is_one_line_before_any_data_is_read(tmp_path, run_cli):
    result = run_cli("stages.train", "-i", str(tmp_path / "none"), "-o", str(tmp_path / "run"), "--crop_size", "48", "--load_size", "48")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: crop size 48 is not divisible by 2^5 = 32 (U-Net depth 5); use a multiple of 32 or choose another depth"


def test_version(run_cli):
    result = run_cli("stages.cli", "--version")
    assert result.returncode == 0 and result.stdout.startswith("pix2pix ")


SECTION_COMMANDS = {  # params.yaml's section models and the command whose options each one holds
    "stages.download:DownloadOptions": ("download",),
    "stages.imageop_options:ResizeOptions": ("resize",),
    "stages.imageop_options:BlankOptions": ("blank",),
    "stages.split:SplitOptions": ("split",),
    "stages.train:TrainOptions": ("train",),
    "stages.evaluate:EvaluateOptions": ("evaluate",),
    "pix2pix.train.config:CGANConfig": ("cgan", "train"),
}


def schema_leaves(node) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(schema_leaves(child) for child in node.values()))
    return set()


@pytest.mark.parametrize(("leaf", "path"), SECTION_COMMANDS.items())
def test_a_params_section_holds_exactly_the_model_options_of_its_command(leaf, path, workflow_module):
    """One declaration: the model's fields are the command's options (beside paths and run names) and the schema's keys."""
    import typer

    from stages.cli import app
    from stages.params import SCHEMA, model

    assert schema_leaves(SCHEMA) == set(SECTION_COMMANDS)
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    options = {param.name for param in command.params}
    fields = set(model(leaf).model_fields)
    assert fields <= options
    assert options - fields <= {"input_dir", "output_dir", "train_dir", "a_dir", "b_dir", "name", "checkpoint", "which", "mlflow_experiment", "register", "restart_if_changed", "params_file", "section"}
    schema = workflow_module("schema").section_schema(leaf)
    assert set(schema["properties"]) == fields and schema["additionalProperties"] is False

"""The `pix2pix` command exposes every stage; each stage also runs as `python -m stages.NAME`."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from stages.cli import STAGES


def test_console_script_lists_every_stage():
    executable = shutil.which("pix2pix", path=str(Path(os.sys.executable).parent)) or shutil.which("pix2pix")
    assert executable, "the pix2pix console script is not installed"
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    for name, aliases in STAGES:
        for command in (name, *aliases):
            assert f" {command} " in result.stdout, command


@pytest.mark.parametrize("name", [name for name, _ in STAGES])
def test_each_stage_runs_as_a_module_with_help(name):
    result = run_cli(f"stages.{name}", "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout and "--help" in result.stdout


def test_original_and_dashed_spellings_are_both_accepted():
    text = run_cli("stages.train", "--help").stdout
    for option in ("--which-direction", "--which_direction", "--lab_colorization", "--max_epochs", "--input_dir", "--output_dir", "--no_flip"):
        assert option in text, option
    assert "--checkpoint" in run_cli("stages.evaluate", "--help").stdout

"""Progress as logs and terminals show it: timestamped whole lines without a terminal, a bar within 80 columns on one."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from stages.progress import Meter
from tests.support.compare import make_run

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
FIGURES = r"(\d+)/(\d+) [\d.]+ \w+/s eta \d+:\d\d:\d\d"
PROGRESS_LINE = re.compile(rf"^{STAMP} (.+?) {FIGURES}(?: .*)?$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
EVERY_UPDATE = {**os.environ, "PIX2PIX_PROGRESS_SECONDS": "0"}


def progress_lines(stderr: str, description: str) -> list[tuple[int, int]]:
    """(done, total) of each timestamped progress line whose description starts with ``description``."""
    matches = (PROGRESS_LINE.match(line) for line in stderr.splitlines())
    return [(int(match[2]), int(match[3])) for match in matches if match and match[1].startswith(description)]


def assert_whole_lines(stderr: str) -> None:
    """No bar glyphs, no control characters, and nothing after the last newline."""
    assert stderr.endswith("\n"), repr(stderr[-200:])
    assert not re.search(r"[━╸╺\r\x1b]", stderr), stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_pairs, run_cli, tiny_args) -> SimpleNamespace:
    """A tiny training stopped after 2 steps, then resumed to 4, each printing a line per update; its data and run folder."""
    root = tmp_path_factory.mktemp("progress")
    data, run = make_pairs(root / "pairs"), root / "run"
    train = ("stages.train", "-i", str(data), "-o", str(run), *tiny_args)
    first = run_cli(*train, "--max_steps", "2", env=EVERY_UPDATE, check=True)
    resumed = run_cli(*train, "--max_steps", "4", env=EVERY_UPDATE, check=True)
    return SimpleNamespace(data=data, run=run, first=first, resumed=resumed, root=root)


def test_training_without_a_terminal_prints_timestamped_lines(trained):
    stderr = trained.first.stderr
    assert_whole_lines(stderr)
    assert progress_lines(stderr, "loading images") == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert progress_lines(stderr, "epoch 1") == [(1, 2), (2, 2)]
    assert all(re.match(STAMP, line) for line in stderr.splitlines()[:-1]), stderr  # all but the closing summary
    assert re.fullmatch(r"trained 2 steps over 4 images \(\d+% of the time waiting for data\) -> .*", stderr.splitlines()[-1])


def test_a_resumed_training_says_so_first_then_what_it_trains(trained, tiny_config):
    from pix2pix.infer.load import generator_from_checkpoint

    lines = trained.resumed.stderr.splitlines()
    assert re.fullmatch(rf"{STAMP} {re.escape(str(trained.run))}: resuming from step 2 of 4", lines[0]), lines
    assert "resuming" not in trained.first.stderr
    generator, _ = generator_from_checkpoint(trained.run / "generator.pt", "cpu")
    parameters = f"{sum(p.numel() for p in generator.parameters()):,}"
    [startup] = [line for line in lines if "parameters" in line]
    assert re.fullmatch(rf"{STAMP} .*: 4 images, 4 steps \(4 per epoch\); parameters G {parameters}, D [\d,]+; device cpu", startup), startup
    assert progress_lines(trained.resumed.stderr, "epoch") == [(3, 4), (4, 4)]


@pytest.mark.parametrize(("stage", "label"), [("evaluate", "evaluating"), ("translate", "translating")])
def test_evaluate_and_translate_print_progress_as_they_go(trained, run_cli, stage, label):
    ran = run_cli(
        f"stages.{stage}", "-i", str(trained.data), "-c", str(trained.run), "-o", str(trained.root / stage), "--batch_size", "1",
        env=EVERY_UPDATE, check=True,
    )  # fmt: skip
    assert_whole_lines(ran.stderr)
    assert progress_lines(ran.stderr, label) == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_compare_prints_a_line_per_image_it_links_into_the_page_folder(tmp_path, random_png, run_cli):
    runs = [arg for name in ("a", "b") for arg in ("--run", str(make_run(tmp_path / name, random_png)))]
    ran = run_cli("stages.compare", *runs, "-o", str(tmp_path / "page.html"), env=EVERY_UPDATE, check=True)
    assert_whole_lines(ran.stderr)
    assert progress_lines(ran.stderr, "compare") == [(done, 12) for done in range(1, 13)]  # 3 rows: input, target, 2 outputs


def test_lines_keep_their_cadence_and_the_last_count_is_always_shown(trained, run_cli):
    """Between two lines PIX2PIX_PROGRESS_SECONDS pass: a fast run at the default 10 s shows its end alone."""
    default = {key: value for key, value in os.environ.items() if key != "PIX2PIX_PROGRESS_SECONDS"}
    translated = run_cli(
        "stages.translate", "-i", str(trained.data), "-c", str(trained.run), "-o", str(trained.root / "cadence"), "--batch_size", "1",
        env=default, check=True,
    )  # fmt: skip
    assert progress_lines(translated.stderr, "translating") == [(4, 4)]


def test_a_bad_progress_interval_is_one_error_line(trained, run_cli, assert_user_error):
    result = run_cli(
        "stages.translate", "-i", str(trained.data), "-c", str(trained.run), "-o", str(trained.root / "bad"),
        env={**os.environ, "PIX2PIX_PROGRESS_SECONDS": "often"},
    )  # fmt: skip
    assert_user_error(result, "PIX2PIX_PROGRESS_SECONDS='often'", "a number >= 0")


def run_on_terminal(args: list[str], columns: int, cwd: Path) -> str:
    """Run ``python -m ARGS`` with a pseudo-terminal as stdin, stdout and stderr; what it wrote, ANSI codes stripped."""
    main, side = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(cwd), "COLUMNS": str(columns), "TERM": "xterm-256color"}
    env.pop("PIX2PIX_PROGRESS_SECONDS", None)
    process = subprocess.Popen([sys.executable, "-m", *args], stdin=side, stdout=side, stderr=side, env=env, cwd=cwd)
    os.close(side)
    written = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the process closed the terminal's last side
            break
        if not chunk:
            break
        written += chunk
    os.close(main)
    assert process.wait(timeout=300) == 0, written.decode(errors="replace")
    return ANSI.sub("", written.decode())


def test_training_on_a_terminal_shows_a_bar_with_count_rate_and_eta_within_80_columns(trained, tiny_args, repo_root):
    run = trained.root / "terminal"
    shown = run_on_terminal(["stages.train", "-i", str(trained.data), "-o", str(run), *tiny_args, "--max_steps", "12"], 80, repo_root)
    lines = [line for line in re.split(r"[\r\n]+", shown) if line.strip()]
    bars = [line for line in lines if "━" in line]
    assert bars and all(len(line) <= 80 for line in bars), bars
    steps = [re.search(rf"\b{FIGURES}$", line) for line in bars if line.startswith("epoch")]
    assert steps and all(steps) and steps[-1][1] == steps[-1][2] == "12", bars
    assert re.search(r"steps/s eta \d:\d\d:\d\d", bars[-1]), bars


def bar_text(meter: Meter, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    console.print(meter.bar_line())
    return console.file.getvalue().rstrip("\n")


def test_a_narrow_bar_drops_the_losses_first_then_shortens_the_description():
    losses = "G_GAN 0.769  G_L1 0.123  D_real 0.512  D_fake 0.499"
    lines = {}
    for width in (160, 80, 50):
        meter = Meter("a/long/description/of/the/run/folder", 400, unit="steps", seconds=0, console=Console(width=width, force_terminal=True, file=io.StringIO()))
        meter.update(123, details=losses)
        lines[width] = bar_text(meter, width)
        meter.close()
    assert losses in lines[160] and "a/long/description/of/the/run/folder" in lines[160]
    assert "G_GAN" not in lines[80] and re.search(rf"{FIGURES}$", lines[80]), lines[80]
    assert "…" in lines[50] and re.search(rf"{FIGURES}$", lines[50]), lines[50]
    assert all(len(line) <= width for width, line in lines.items()), lines

"""A stage ends with the program that launched it, also through a shell that forks instead of exec'ing
(dash, DVC's shell when SHELL is unset), so a killed `dvc repro` leaves no training running unseen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="parent-death signals are Linux's")

CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from pix2pix.processes import signal_on_launcher_death

    folder = Path(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: (folder.joinpath("terminated").write_text("yes"), sys.exit(0)))
    signal_on_launcher_death(signal.SIGTERM, poll_seconds=0.05)
    folder.joinpath("ready").write_text("yes")
    time.sleep(120)
    """
)
LAUNCHER = textwrap.dedent(
    """
    import subprocess, sys
    subprocess.run(sys.argv[1:])
    """
)


@pytest.mark.parametrize("through", ["nothing", "/bin/sh", "bash"])
def test_the_launchers_death_sends_the_signal(tmp_path, through):
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    child = [sys.executable, str(tmp_path / "child.py"), str(tmp_path)]
    # `; exit $?` keeps any shell from exec'ing the command: the shell stays between launcher and child
    command = child if through == "nothing" else [through, "-c", " ".join(child) + "; exit $?"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    launcher = subprocess.Popen([sys.executable, str(tmp_path / "launcher.py"), *command], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ready").exists():
            assert time.monotonic() < deadline and launcher.poll() is None
            time.sleep(0.02)
        assert not (tmp_path / "terminated").exists()
        launcher.kill()
        launcher.wait()
        while not (tmp_path / "terminated").exists():
            assert time.monotonic() < deadline, "the child outlived its launcher"
            time.sleep(0.02)
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)


def test_a_shell_left_alone_does_not_send_it(tmp_path):
    """The watch fires on the launcher's death, not on its own: a live launcher keeps the child running."""
    (tmp_path / "child.py").write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    shell = subprocess.Popen(["/bin/sh", "-c", f"{sys.executable} {tmp_path / 'child.py'} {tmp_path}; exit $?"], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ready").exists():
            assert time.monotonic() < deadline and shell.poll() is None
            time.sleep(0.02)
        time.sleep(0.5)  # ten polls
        assert not (tmp_path / "terminated").exists() and shell.poll() is None
    finally:
        os.killpg(shell.pid, signal.SIGKILL)

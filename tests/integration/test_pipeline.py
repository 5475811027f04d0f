"""The whole default graph under `dvc repro`, in a temporary clone, at test scale.

One clone is shared by the tests of this module (a full repro is the expensive part); they
run in file order: first repro, then param edits and their reruns, then the remote round trip.
Checks of params.yaml and dvc.yaml that need no run: tests/unit/test_workflow.py.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import shlex
import shutil
import sqlite3
import tarfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from pix2pix.files import OUTPUT_MARKER
from tests.support.devtools import launched

CGAN = "digits-cgan"


def ran_stages(output: str) -> set[str]:
    """The stages `dvc repro` ran, or restored from its run cache (a result it computed before)."""
    return {ran or cached for ran, cached in re.findall(r"Running stage '([^']+)'|Stage '([^']+)' is cached", output)}


def tree_digest(folder: Path) -> dict[str, str]:
    # .gitignore: git's, not DVC's; NAME.lock.json: download's record of an archive's sha256, beside its output
    files = (p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".gitignore" and not p.name.endswith(".lock.json"))
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_full_repro_builds_every_output(clone, dvc, experiments):
    result = dvc("repro", cwd=clone)
    stages = ran_stages(result.stdout)
    assert {f"train@{name}" for name in experiments} <= stages and "report_index" in stages
    for name in experiments:
        assert (clone / "models" / name / "generator.pt").is_file()
        metrics = json.loads((clone / "results" / name / "metrics.json").read_text())
        assert metrics["count"] > 0 and 0 <= metrics["l1"] <= 1
        assert (clone / "reports" / name / "index.html").is_file()
    assert "ciede2000" in json.loads((clone / "results" / "colorization" / "metrics.json").read_text())
    assert f"cgan@{CGAN}" in stages and (clone / "reports" / CGAN / "grid.png").is_file()
    assert "conditioning_accuracy" in json.loads((clone / "models" / CGAN / "metrics.json").read_text())
    index = (clone / "reports" / "index.html").read_text()
    assert all(name in index for name in (*experiments, CGAN))
    assert (clone / "dvc.lock").is_file()
    assert "up to date" in dvc("status", cwd=clone).stdout
    assert json.loads((clone / "models" / "facades" / "mlflow.json").read_text()) == {"experiment": "facades"}  # no run id in outputs

    shown = json.dumps(json.loads(dvc("metrics", "show", "--json", cwd=clone).stdout))
    assert shown.count("ssim") >= len(experiments) and "error" not in shown
    plots = json.loads(dvc("plots", "show", "--json", cwd=clone).stdout)
    assert any("G_L1" in json.dumps(value) for value in plots["data"].values())

    with sqlite3.connect(clone / "mlflow.db") as db:
        tracked = {name for (name,) in db.execute("select name from experiments")}
        assert set(experiments) <= tracked
        keys = {key for (key,) in db.execute("select distinct key from metrics")}
        assert {"G_GAN", "G_L1", "D_real", "D_fake", "lr", "eval_l1", "eval_ssim"} <= keys


def test_dvc_plots_render_offline(clone, dvc, chromium, tmp_path):
    """`dvc plots show` writes a page that needs no network (.dvc/plots.html inlines vega): in headless Chromium with
    every non-loopback request sent to a dead proxy, each curve is drawn and each of evaluate's images loads."""
    dvc("plots", "show", "-o", str(tmp_path / "plots"), cwd=clone)
    page = tmp_path / "plots" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr" not in html and "<script src=" not in html
    curves = html.count("vegaEmbed(")
    assert curves >= 6  # losses and validation of the three experiments
    with launched(chromium, tmp_path, "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>") as browser:
        browser.call("Page.navigate", url=page.as_uri())
        browser.wait_for(f"document.querySelectorAll('.vega-embed canvas, .vega-embed svg.marks').length >= {curves}")
        browser.wait_for("document.images.length > 0 && Array.from(document.images).every(i => i.complete)")
        assert browser.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
        assert browser.evaluate("Array.from(document.images).some(i => i.src.includes('outputs'))")


def readme_commands(repo_root: Path, heading: str) -> list[list[str]]:
    """The commands of the first bash block under ``heading`` in README.md, comments dropped."""
    text = (repo_root / "README.md").read_text()
    block = text[text.index(heading) :].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = (line.split(" #", 1)[0].strip() for line in block.splitlines())
    return [shlex.split(line) for line in lines if line and not line.startswith("#")]


def test_the_readmes_pipeline_commands_run_as_written(clone, dvc, repo_root):
    """Every command of README's pipeline block, verbatim, at test scale (the workspace is restored after)."""
    commands = readme_commands(repo_root, "## The pipeline")
    assert ["dvc", "exp", "run", "-S", "++experiments.facades.train.lr=0.0001"] in commands
    saved = {name: (clone / name).read_bytes() for name in ("params.yaml", "dvc.lock")}
    for command in commands:
        assert command[0] == "dvc", command
        result = dvc(*command[1:], cwd=clone)
        if command[1:3] == ["exp", "run"]:
            assert "Running stage 'train@facades'" in result.stdout
            assert "lr: 0.0001" in (clone / "params.yaml").read_text()
        if command[1:3] == ["exp", "show"]:
            assert "experiments.facades.train.lr" in result.stdout
    for name, content in saved.items():
        (clone / name).write_bytes(content)
    dvc("checkout", "--force", cwd=clone)
    assert "up to date" in dvc("status", cwd=clone).stdout


def test_lr_edit_reruns_that_experiment_only(clone, dvc, edit_params):
    edit_params(clone, lambda p: p["experiments"]["facades"]["train"].update(lr=0.0001))
    status = dvc("status", cwd=clone).stdout
    assert "train@facades" in status and "train@inpainting" not in status and "download" not in status
    stages = ran_stages(dvc("repro", cwd=clone).stdout)
    assert stages == {"train@facades", "evaluate@facades", "report@facades", "report_index", "compare"}


def test_blank_edit_reruns_blank_and_downstream(clone, dvc, edit_params):
    edit_params(clone, lambda p: p["blank"].update(fraction=0.4))
    stages = ran_stages(dvc("repro", cwd=clone).stdout)
    assert stages == {
        "blank_photos", "combine@inpainting", "split@inpainting",
        "train@inpainting", "evaluate@inpainting", "report@inpainting", "report_index", "compare",
    }  # fmt: skip


def facades_like_archive(folder: Path) -> Path:
    """A small archive laid out like the real facades: facades/{train,val,test}/N.jpg, A|B pairs."""
    from pix2pix.prep.imageops import combine
    from pix2pix.prep.synthetic import facade_pair

    counts = {"train": 6, "val": 2, "test": 3}
    archive = folder / "facades.tar.gz"
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for split, count in counts.items():
            for index in range(count):
                label, photo = facade_pair(7, index + 10 * len(split), 32)
                buffer = io.BytesIO()
                combine(photo, label).save(buffer, format="JPEG", quality=95)
                info = tarfile.TarInfo(f"facades/{split}/{index + 1}.jpg")
                info.size = len(buffer.getvalue())
                tar.addfile(info, io.BytesIO(buffer.getvalue()))
    return archive


def test_real_data_is_a_params_switch(clone, dvc, edit_params, tmp_path, monkeypatch):
    """An archive like the real facades, served from 127.0.0.1, through `dvc repro`: only the facades chain
    reruns, and the archive's own train/val/test are kept, not re-split."""
    archive = facades_like_archive(tmp_path / "served")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(archive.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    url = f"http://127.0.0.1:{server.server_address[1]}/facades.tar.gz"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    try:
        edit_params(clone, lambda p: p["data"].update(facades={"source": url, "sha256": digest}))
        stages = ran_stages(dvc("repro", cwd=clone).stdout)
    finally:
        server.shutdown()
        server.server_close()
    assert stages == {"download_facades", "split@facades", "train@facades", "evaluate@facades", "report@facades", "report_index", "compare"}
    split = clone / "data" / "split" / "facades"
    assert {name: sorted(p.name for p in (split / name).iterdir()) for name in ("train", "val", "test")} == {
        "train": [f"{i}.jpg" for i in range(1, 7)], "val": ["1.jpg", "2.jpg"], "test": ["1.jpg", "2.jpg", "3.jpg"],
    }  # fmt: skip
    assert json.loads((clone / "results" / "facades" / "metrics.json").read_text())["count"] == 2
    assert "up to date" in dvc("status", cwd=clone).stdout


def test_local_remote_push_then_pull_restores_identical_outputs(clone, tmp_path, dvc, experiments):
    """Every output but the checkpoints (``push: false`` in dvc.yaml) goes to the remote; a pull with
    --allow-missing restores the rest as it was, `dvc repro --allow-missing` reruns nothing, and evaluate
    reruns into a pulled results folder to the same bytes."""
    outputs = ["data", "models", "results", "reports"]
    before = {name: tree_digest(clone / name) for name in outputs}
    remote = tmp_path / "remote"
    dvc("remote", "add", "-d", "local", str(remote), cwd=clone)
    dvc("push", cwd=clone)
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    md5 = {out["path"]: out["md5"] for stage in lock.values() for out in stage["outs"]}
    stored = {"".join(path.relative_to(remote / "files" / "md5").parts) for path in (remote / "files" / "md5").rglob("*") if path.is_file()}
    runs = {f"train@{name}": f"models/{name}" for name in experiments} | {f"cgan@{CGAN}": f"models/{CGAN}"}
    assert set(md5.values()) - stored == {md5[f"{run}/checkpoint.pt"] for run in runs.values()}  # generator.pt, results, ... are there

    shutil.rmtree(clone / ".dvc" / "cache")
    for name in outputs:
        shutil.rmtree(clone / name)
    dvc("pull", "--allow-missing", cwd=clone)
    without_checkpoints = {name: {path: digest for path, digest in tree.items() if Path(path).name != "checkpoint.pt"} for name, tree in before.items()}
    # results/NAME is no out itself (its files and its images are: dvc.yaml), so the marker that evaluate leaves in it
    # stays behind; DVC deletes a stage's outs before it reruns, which leaves evaluate an empty folder to replace
    without_checkpoints["results"] = {path: digest for path, digest in without_checkpoints["results"].items() if Path(path).name != OUTPUT_MARKER}
    assert {name: tree_digest(clone / name) for name in outputs} == without_checkpoints
    missing = json.loads(dvc("status", "--json", cwd=clone).stdout)
    assert missing == {stage: [{"changed outs": {f"{run}/checkpoint.pt": "not in cache"}}] for stage, run in runs.items()}
    assert ran_stages(dvc("repro", "--allow-missing", cwd=clone).stdout) == set()
    pulled_lock = (clone / "dvc.lock").read_text()
    dvc("repro", "--force", "--single-item", "evaluate@facades", cwd=clone)  # into the pulled folder, which has no marker
    assert (clone / "dvc.lock").read_text() == pulled_lock and tree_digest(clone / "results" / "facades") == {
        path.removeprefix("facades/"): digest for path, digest in before["results"].items() if path.startswith("facades/")
    }


def test_a_queued_experiment_logs_to_the_repositorys_store(clone, dvc):
    """DVC runs it in .dvc/tmp/exps and deletes that folder; its MLflow run stays in the repository's store.

    The clone was pulled without checkpoints: --allow-missing keeps the other trainings from rerunning."""
    dvc("exp", "run", "--queue", "--allow-missing", "-S", "experiments.facades.train.lr=0.00015", "-n", "queued-lr", cwd=clone)
    dvc("queue", "start", cwd=clone)
    deadline = time.monotonic() + 900
    while re.search(r"Queued|Running", status := dvc("queue", "status", cwd=clone).stdout):
        assert time.monotonic() < deadline, status
        time.sleep(5)
    assert "Success" in status, dvc("queue", "logs", "queued-lr", cwd=clone).stdout
    with sqlite3.connect(clone / "mlflow.db") as db:
        runs = db.execute(
            "select runs.run_uuid, runs.name, runs.status from runs join tags on tags.run_uuid = runs.run_uuid"
            " where tags.key = 'pix2pix.dvc_experiment' and tags.value = 'queued-lr'"
        ).fetchall()
        assert [(name, status) for _, name, status in runs] == [("queued-lr", "FINISHED")]
        keys = {key for (key,) in db.execute("select distinct key from metrics where run_uuid = ?", (runs[0][0],))}
    assert {"G_L1", "eval_l1"} <= keys  # train and evaluate found the same run
    assert not list((clone / ".dvc").rglob("mlflow.db"))


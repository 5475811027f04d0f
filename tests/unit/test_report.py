"""HTML reports: escaping, paging of huge tables, self-contained folders, clean failures.

A report in a real browser: tests/integration/test_report_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from html import unescape
from pathlib import Path
from urllib.parse import unquote

import pytest
from markupsafe import escape
from PIL import Image

from pix2pix.apps.report import build_report
from pix2pix.errors import UserError


def report_data(html: str) -> dict:
    """The JSON blob the page's pager reads its rows from."""
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(blob.group(1))


def test_hostile_names_are_escaped(tmp_path, hostile, make_results):
    eval_dir, run_dir = make_results(tmp_path, ["plain", hostile.name])
    build_report(hostile.title, eval_dir, run_dir, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert hostile.name not in html and "<!--" not in html and "alert(1)</script>" not in html
    assert str(escape(hostile.title)) in html
    assert html.count("<script") == 2  # the data blob and the pager, nothing injected
    assert [row[0] for row in report_data(html)["rows"]] == ["plain", hostile.name]


def test_page_policy_lets_only_its_own_pager_run(tmp_path, csp, make_results):
    eval_dir, run_dir = make_results(tmp_path, ["one"])
    build_report("csp", eval_dir, run_dir, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1)
    rules = csp.directives(unescape(policy))
    assert rules["default-src"] == ["'none'"] and rules["script-src"] == [csp.sha256_source(s) for s in csp.inline_scripts(html)]


def test_ten_thousand_rows_are_data_not_markup(tmp_path, make_results):
    names = [f"image{index:05d}" for index in range(10_000)]
    eval_dir, run_dir = make_results(tmp_path, names)
    build_report("big", eval_dir, run_dir, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    data = report_data(html)
    assert len(data["rows"]) == 10_000 and data["per_page"] == 50
    assert html.count("<img") == 1  # the loss plot; table rows are built by the pager, a page at a time
    assert 'loading = "lazy"' in html
    assert len(list((tmp_path / "report" / "images").iterdir())) == 30_000


def test_image_paths_are_relative_quoted_and_linked(tmp_path, hostile, make_results):
    names = ["a b", "100%", "c#1?x", "été", hostile.name]
    eval_dir, run_dir = make_results(tmp_path, names)
    report = tmp_path / "report"
    build_report("paths", eval_dir, run_dir, report)
    html = (report / "index.html").read_text()
    assert 'src="losses.png"' in html and (report / "losses.png").stat().st_size > 1000
    for name, src, *metrics in report_data(html)["rows"]:
        assert src.startswith("images/") and not re.search(r"[ #?<>\"']", src), src
        for kind in ("inputs", "outputs", "targets"):
            copy = report / unquote(f"{src}-{kind}.png")
            assert copy.is_file() and copy.parent == report / "images"
            assert os.path.samefile(copy, eval_dir / "images" / f"{name}-{kind}.png")  # a hard link, not a copy
        assert len(metrics) == 3
    assert json.loads((report / "metrics.json").read_text())["count"] == len(names)


@pytest.mark.parametrize(
    ("losses", "note"),
    [("no file", "does not exist"), ("header only", "has no rows yet"), ("no run", "No training run folder was given")],
)
def test_missing_losses_are_explained_on_the_page(tmp_path, losses, note, make_results):
    eval_dir, run_dir = make_results(tmp_path, ["one"], loss_steps=0)
    if losses == "no file":
        (run_dir / "losses.csv").unlink()
    build_report("no losses", eval_dir, None if losses == "no run" else run_dir, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert 'id="no-losses"' in html and note in html
    assert "losses.png" not in html and not (tmp_path / "report" / "losses.png").exists()


def test_output_folder_must_not_replace_the_results(tmp_path, make_results):
    eval_dir, run_dir = make_results(tmp_path, ["one"])
    with pytest.raises(UserError, match="must not be or contain"):
        build_report("x", eval_dir, run_dir, tmp_path)
    assert (eval_dir / "metrics.csv").is_file()


def remove_results(eval_dir: Path) -> str:
    shutil.rmtree(eval_dir)
    return "results: evaluation folder not found"


def break_metrics(eval_dir: Path) -> str:
    (eval_dir / "metrics.csv").write_text("name,l1\none,oops\n")
    return "metrics.csv: line 2"


def drop_image(eval_dir: Path) -> str:
    (eval_dir / "images" / "one-outputs.png").unlink()
    return "one-outputs.png"


def drop_losses_column(eval_dir: Path) -> str:
    (eval_dir.parent / "run" / "losses.csv").write_text("step,G_GAN\n1,0.5\n")
    return "losses.csv: missing columns D_real, D_fake"


@pytest.mark.parametrize(
    "damage",
    [remove_results, break_metrics, drop_image, drop_losses_column],
    ids=["missing eval dir", "bad metrics.csv", "missing image", "bad losses.csv"],
)
def test_bad_input_is_one_error_line(tmp_path, damage, assert_user_error, make_results, run_cli):
    eval_dir, run_dir = make_results(tmp_path, ["one"])
    fragment = damage(eval_dir)
    result = run_cli("stages.report", "--eval-dir", str(eval_dir), "--run-dir", str(run_dir), "--output-dir", str(tmp_path / "report"))
    assert_user_error(result, fragment)
    assert not (tmp_path / "report").exists()


def test_index_lists_experiments(tmp_path, assert_user_error, hostile, make_results, run_cli):
    for name, l1 in (("a", 0.3), ("b", 0.1)):
        eval_dir, run_dir = make_results(tmp_path / name, ["one"])
        (eval_dir / "metrics.json").write_text(json.dumps({"l1": l1, "psnr": 20.0, "count": 1, "eval_mode": "train"}))
        build_report(name, eval_dir, run_dir, tmp_path / "reports" / name)
    index = tmp_path / "reports" / "index.html"
    experiments = [f"{hostile.title}={tmp_path / 'reports' / 'a'}", f"b={tmp_path / 'reports' / 'b'}"]
    run_cli("stages.report", "--index", str(index), *(arg for spec in experiments for arg in ("--experiment", spec)), check=True)
    html = index.read_text()
    assert str(escape(hostile.title)) in html and "<script" not in html
    links = re.findall(r'<a href="([^"]+)">', html)
    assert list(dict.fromkeys(links)) == ["a/index.html", "b/index.html"] and all((index.parent / link).is_file() for link in links)
    assert "0.1000" in html and "0.3000" in html and "best" not in html
    assert_user_error(run_cli("stages.report", "--index", str(index)), "--experiment")


def test_cgan_run_report_shows_grid_accuracy_and_losses(tmp_path, run_cli):
    run = tmp_path / "digits"
    (run / "samples").mkdir(parents=True)
    Image.new("RGB", (320, 320), "white").save(run / "samples" / "final.png")
    (run / "metrics.json").write_text(json.dumps({"conditioning_accuracy": 0.93, "diversity": 0.8}))
    (run / "per_digit.json").write_text(json.dumps({str(d): 0.9 for d in range(10)}))
    (run / "losses.csv").write_text("step,epoch,G_GAN,G_MS,D_real,D_fake,lr\n10,1,1.5,2.0,0.3,0.4,0.0002\n20,1,1.2,1.8,0.4,0.5,0.0002\n")
    out = tmp_path / "report"
    result = run_cli("stages.report", "--cgan-run", str(run), "--output-dir", str(out), "--name", "digits-cgan")
    assert result.returncode == 0, result.stderr
    page = (out / "index.html").read_text()
    assert 'src="grid.png"' in page and 'id="loss-plot"' in page and 'id="per-digit"' in page and "0.9300" in page
    assert json.loads((out / "metrics.json").read_text()) == {"conditioning_accuracy": 0.93, "diversity": 0.8}
    assert json.loads((out / "evaluation.json").read_text()) == {
        "directions": {"conditioning_accuracy": "higher", "diversity": "higher"},
        "baselines": {"chance": {"conditioning_accuracy": 0.1}},
    }
    assert "beats chance on 1 of 1 metrics" in page
    assert (out / "grid.png").is_file() and (out / "losses.png").is_file()


def test_validation_curves_mark_the_step_best_pt_was_kept_at(tmp_path, make_results):
    eval_dir, run_dir = make_results(tmp_path, ["one"])
    (run_dir / "val.csv").write_text("step,epoch,l1,psnr,ssim\n80,1,0.30,14.0,0.20\n160,2,0.12,15.0,0.30\n240,3,0.20,16.0,0.35\n")
    (run_dir / "options.json").write_text(json.dumps({"val_metric": "l1"}))
    build_report("val", eval_dir, run_dir, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert 'src="validation.png"' in html and (tmp_path / "report" / "validation.png").stat().st_size > 1000

    from pix2pix.apps.report import plot_validation

    figure_file = tmp_path / "plot.png"
    assert plot_validation(run_dir / "val.csv", figure_file, "l1", {"l1": "lower"})
    (run_dir / "val.csv").write_text("step,epoch,l1\n")
    assert not plot_validation(run_dir / "val.csv", figure_file, "l1", {"l1": "lower"})
    build_report("val", eval_dir, run_dir, tmp_path / "report2")
    assert 'id="no-validation"' in (tmp_path / "report2" / "index.html").read_text()


def test_a_run_without_validation_says_so(tmp_path, make_results):
    eval_dir, run_dir = make_results(tmp_path, ["one"])
    build_report("no val", eval_dir, run_dir, tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert 'id="no-validation"' in html and "trained without --val-dir" in html and "validation.png" not in html

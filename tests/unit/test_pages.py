"""The apps' pages: templates shipped in the package, and the one Content-Security-Policy helper."""

from __future__ import annotations

import subprocess
import sys

from pix2pix.apps.pages import content_security_policy


def test_policy_allows_exactly_the_given_scripts_by_hash(csp):
    scripts = ['console.log("a")', "\nlet é = '</b>';\n"]
    policy = csp.directives(content_security_policy(scripts=scripts))
    assert policy == {
        "default-src": ["'none'"],
        "img-src": ["'self'"],
        "style-src": ["'unsafe-inline'"],
        "script-src": [csp.sha256_source(script) for script in scripts],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
    }


def test_policy_without_scripts_runs_none_and_connects_nowhere_unless_told(csp):
    policy = csp.directives(content_security_policy(images=("'self'", "blob:"), connect=("'self'",)))
    assert policy["script-src"] == ["'none'"]
    assert policy["img-src"] == ["'self'", "blob:"] and policy["connect-src"] == ["'self'"]
    assert "connect-src" not in csp.directives(content_security_policy())  # falls back to default-src 'none'


def test_templates_come_from_the_package_not_the_working_directory(tmp_path, repo_root):
    """A page rendered from another folder, one holding a decoy ``templates/``, is still the package's page."""
    decoy = tmp_path / "templates"
    decoy.mkdir()
    for name in ("index.html.j2", "base.html.j2", "report.css", "pager.js"):
        (decoy / name).write_text("DECOY")
    code = (
        "from pathlib import Path; from pix2pix.apps.report import build_index; "
        "build_index([('x', 'x', {'l1': 0.5})], Path('index.html'))"
    )
    env = {"PYTHONPATH": str(repo_root), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, timeout=120)
    html = (tmp_path / "index.html").read_text()
    assert "DECOY" not in html and '<table id="experiments">' in html and "sha256-" in html

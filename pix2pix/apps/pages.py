"""The apps' HTML pages: Jinja2 templates shipped in ``pix2pix/apps/templates``, and their Content-Security-Policy.

Each page is one self-contained file: its CSS and JS, kept as files of their own in the templates
folder, are inlined by the template (``inline_file``), so a report opens from disk offline and
the demo server has a single page to serve. The policy then allows exactly those inline scripts,
by their SHA-256, and nothing from elsewhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable

import jinja2
from markupsafe import Markup


def content_security_policy(
    scripts: Iterable[str] = (), images: Iterable[str] = ("'self'",), connect: Iterable[str] = ()
) -> str:
    """The policy of a page whose inline ``scripts`` (their exact texts) may run; the apps' one source of policies.

    Everything else is refused (``default-src 'none'``): remote resources, injected scripts and
    event handlers, forms, ``<base>``. Inline styles stay allowed (each page has a ``<style>``).
    ``images`` and ``connect`` are CSP sources such as ``'self'``, ``blob:``, ``data:``.
    """
    hashes = [f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'" for script in scripts]
    directives = {
        "default-src": ["'none'"],
        "img-src": list(images),
        "style-src": ["'unsafe-inline'"],
        "script-src": hashes or ["'none'"],
        "connect-src": list(connect),
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items() if sources)


def packaged_text(name: str) -> str:
    """A file of the templates folder as text: what a page inlines, and what its policy must hash."""
    return _environment().loader.get_source(_environment(), name)[0]


def render(template: str, **context) -> str:
    """Render a template of the package with autoescaping (and an error for any undefined name)."""
    return _environment().get_template(template).render(**context)


def format_number(value) -> str:
    """Four decimals for floats, as-is for counts and words, a dash for missing values."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pix2pix.apps", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    environment.filters["number"] = format_number
    environment.globals["inline_file"] = lambda name: Markup(packaged_text(name))
    # |tojson escapes < > & ' as \u003c etc., so "</script>" and "<!--" in names stay inert.
    environment.policies["json.dumps_kwargs"] = {"allow_nan": False, "ensure_ascii": False}
    return environment

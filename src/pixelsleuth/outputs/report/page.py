"""Rendering a page: the Jinja2 environment (autoescaping on), the inline assets and the page's CSP.

Every page carries its CSS and its one script inline, and a Content-Security-Policy that allows
images only from data: URIs, no network at all, and no script but its own (by hash): text from an image
file is escaped by the templates, and if anything ever slipped through, it still could not run or load.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("pixelsleuth.outputs.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def asset(name: str) -> str:
    """The text of a file in the templates folder (CSS, JavaScript)."""
    return resources.files("pixelsleuth.outputs.report").joinpath("templates", name).read_text("utf-8")


def content_security_policy(script: str) -> str:
    """No network, images from data: only, inline styles, and only `script` may run."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def render_page(template: str, script_name: str, **context: Any) -> str:
    """Render `template` with the shared CSS and the script `script_name` inline."""
    script = asset(script_name)
    return (
        _environment()
        .get_template(template)
        .render(
            css=Markup(asset("report.css")),
            script=Markup(script),
            csp=content_security_policy(script),
            **context,
        )
    )

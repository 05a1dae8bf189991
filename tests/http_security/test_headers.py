"""The header values and the inline-script hashes, without an app."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from flowscope.http_security import SecurityHeaders, inline_script_hashes


def test_the_policy_has_no_inline_script_and_denies_framing() -> None:
    policy = SecurityHeaders().content_security_policy()
    directives = dict(part.split(" ", 1) for part in policy.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'self'"
    assert directives["form-action"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in directives["script-src"]
    webgl = SecurityHeaders().content_security_policy(webgl_eval=True)
    assert "script-src 'self' 'unsafe-eval';" in webgl and "'unsafe-inline' " not in webgl


def test_inline_scripts_are_allowed_by_their_hash_only(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    inline = "window.config = {a: 1};"
    page.write_text(
        f'<html><head><script src="main.js"></script><script>{inline}</script></head></html>'
    )
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    hashes = inline_script_hashes([page, tmp_path / "missing.html"])
    assert hashes == (f"'sha256-{digest}'",)
    policy = SecurityHeaders(script_hashes=hashes).content_security_policy()
    assert f"script-src 'self' 'sha256-{digest}';" in policy


def test_mlflows_installed_ui_pages_have_no_inline_script() -> None:
    """What the server allows by hash today: nothing (MLflow 3.17's pages load scripts
    by src only); a later MLflow with inline scripts gets exactly their hashes."""
    from flowscope.server.app import mlflow_ui_headers

    headers = mlflow_ui_headers()
    assert headers.script_hashes == ()
    assert headers.frameable == ("/static-files/lib/notebook-trace-renderer/",)

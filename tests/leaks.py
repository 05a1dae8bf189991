"""``assert_no_leak``: an answer a client got names nothing of the server's machine.

No path of the test's folders (which stand in for the server's staging, model, artifact
and database folders), no backing service's address, no driver's or library's own error
text and no traceback: those belong in the server's log.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

# What a driver's, botocore's or Python's own text looks like when it reaches a client.
LIBRARY_MARKS = (
    "Traceback",
    'File "',
    "psycopg",
    "sqlalchemy",
    "sqlite3.",
    "OperationalError",
    "botocore",
    "EndpointConnectionError",
    "Could not connect to the endpoint",
    "MlflowException",
    "postgresql://",
    "sqlite:///",
    "redis://",
    "s3://",
    "[SQL:",
    "sqlalche.me",
)


def assert_no_leak(text: str, *secrets: str | Path) -> None:
    """Fail naming what ``text`` gives away: any of ``secrets`` (paths, URIs, hosts,
    ports, user names of the test's parts), the machine's temporary folder, or a
    library's mark (:data:`LIBRARY_MARKS`)."""
    found = [str(secret) for secret in secrets if str(secret) and str(secret) in text]
    found += [mark for mark in LIBRARY_MARKS if mark.lower() in text.lower()]
    if tempfile.gettempdir() in text:
        found.append(tempfile.gettempdir())
    assert not found, f"the answer gives away {found}: {text[:2000]}"

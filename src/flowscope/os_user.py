"""Who runs this process, as the operating system names them."""

from __future__ import annotations

import getpass


def os_user() -> str | None:
    """The login name of this process's user; None when there is none, as in a container
    running under a UID with no passwd entry (where :func:`getpass.getuser` raises)."""
    try:
        return getpass.getuser()
    except Exception:  # KeyError before Python 3.13, OSError since
        return None

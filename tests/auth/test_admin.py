"""The first admin: a server with auth refuses to start without a usable one."""

from __future__ import annotations

import pytest

from flowscope.auth.admin import check_admin
from flowscope.errors import ConfigError


@pytest.mark.parametrize(
    ("username", "password", "named"),
    [
        (None, "a long enough passphrase", "FLOWSCOPE_ADMIN_USERNAME"),
        ("  ", "a long enough passphrase", "FLOWSCOPE_ADMIN_USERNAME"),
        ("admin", None, "FLOWSCOPE_ADMIN_PASSWORD"),
        ("admin", "", "FLOWSCOPE_ADMIN_PASSWORD"),
        ("admin", "short-pass", "too short"),
        ("admin", "password1234", "known default"),
        ("admin", "PASSWORD1234", "known default"),
        ("administrator", "administrator", "known default"),
        ("carol-the-admin", "carol-the-admin", "known default"),
    ],
)
def test_a_missing_short_or_default_password_is_refused(
    username: str | None, password: str | None, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        check_admin(username, password)


def test_a_good_admin_is_taken() -> None:
    assert check_admin(" admin ", "correct horse battery") == ("admin", "correct horse battery")

"""The first admin of ``flowscope server --auth``: a password that is long enough and not
one of the defaults that tools (MLflow's basic-auth app among them) have shipped."""

from __future__ import annotations

from flowscope.errors import ConfigError

MIN_PASSWORD_LENGTH = 12  # MLflow's own rule for its users' passwords
# defaults shipped by MLflow (password1234, CVE-2026-2635) and the usual guesses
KNOWN_DEFAULTS = frozenset(
    {
        "password1234",
        "password",
        "password123",
        "password12345",
        "passwordpassword",
        "admin",
        "adminadmin",
        "adminadmin123",
        "administrator",
        "changeme",
        "changeme1234",
        "mlflow",
        "mlflow123456",
        "flowscope",
        "flowscope123",
        "123456789012",
        "1234567890123",
        "qwertyuiop12",
        "letmein12345",
        "secret123456",
    }
)


def check_admin(username: str | None, password: str | None) -> tuple[str, str]:
    """The admin's name and password, or a :class:`ConfigError` naming what is wrong:
    ``flowscope server --auth`` exits 1 with it rather than start open or guessable."""
    if not username or not username.strip():
        raise ConfigError(
            "auth is on but no admin is named: set FLOWSCOPE_ADMIN_USERNAME "
            "(or admin_username in flowscope.yaml)"
        )
    if not password:
        raise ConfigError(
            "auth is on but the admin has no password: set FLOWSCOPE_ADMIN_PASSWORD "
            "(or admin_password in flowscope.yaml)"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(
            f"the admin password is too short: at least {MIN_PASSWORD_LENGTH} characters"
        )
    if password.lower() in KNOWN_DEFAULTS or password.lower() == username.strip().lower():
        raise ConfigError("the admin password is a known default: choose another one")
    return username.strip(), password

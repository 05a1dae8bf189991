"""The registry tests' quick SQLite store serves the report tests too."""

from tests.registry.conftest import _template_db, sqlite_uri

__all__ = ["_template_db", "sqlite_uri"]

"""What went wrong, in words fit for whoever asked: an error raised deep inside training,
MLflow or a driver said in one line that names the problem and nothing of the machine.

A library's own text is for the log: a database driver's names the host, port and user
(and its SQL), botocore's names the object store's endpoint, MLflow's names artifact
folders and store URIs, an ``OSError``'s names a file. :func:`public_reason` keeps the
kind of problem ("the database is unreachable", "the artifact store refused the
request") and leaves the rest to the caller's ``logger.exception``.
"""

from __future__ import annotations

from flowscope.errors import FlowscopeError

__all__ = ["public_reason"]

# MLflow's error codes that say the caller asked for something wrong; their messages
# name what was asked (a run id, a parameter), which the caller already knows.
_MLFLOW_REQUEST_ERRORS = {
    "INVALID_PARAMETER_VALUE": "the tracking store refused a value",
    "RESOURCE_DOES_NOT_EXIST": "the tracking store has no such run, experiment or model",
    "RESOURCE_ALREADY_EXISTS": "the tracking store already has it",
    "PERMISSION_DENIED": "the tracking server refused the request",
    "UNAUTHENTICATED": "the tracking server asked who is calling",
}


def public_reason(exc: BaseException) -> str:
    """One line saying what kind of problem ``exc`` is, holding no path, address,
    driver text or SQL (a :class:`FlowscopeError`'s message is already such a line).

    >>> public_reason(FileNotFoundError(2, "No such file or directory", "/srv/x"))
    'a file could not be read or written: No such file or directory'
    """
    if isinstance(exc, FlowscopeError):
        return exc.message
    kind = _library_kind(exc)
    if kind is not None:
        return kind
    if isinstance(exc, MemoryError):
        return "the worker ran out of memory"
    if isinstance(exc, OSError):
        said = f": {exc.strerror}" if exc.strerror else ""
        return f"a file could not be read or written{said}"
    return f"an unexpected {type(exc).__name__}; the server log has the details"


def _library_kind(exc: BaseException) -> str | None:
    """The problem a database driver, botocore or MLflow raised, by class: only the
    classes of libraries already imported can have been raised."""
    import sys

    mlflow = sys.modules.get("mlflow.exceptions")
    if mlflow is not None and isinstance(exc, mlflow.MlflowException):
        if exc.error_code == "TEMPORARILY_UNAVAILABLE":
            return "the tracking store is unreachable"
        return _MLFLOW_REQUEST_ERRORS.get(exc.error_code, "the tracking store failed the request")
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy is not None and isinstance(exc, sqlalchemy.SQLAlchemyError):
        if isinstance(exc, sqlalchemy.OperationalError | sqlalchemy.InterfaceError):
            return "the database is unreachable"
        return "the database refused the request"
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is not None:
        if isinstance(exc, botocore.ConnectionError):
            return "the artifact store is unreachable"
        if isinstance(exc, botocore.BotoCoreError | botocore.ClientError):
            return "the artifact store refused the request"
    for driver in ("psycopg2", "psycopg", "sqlite3", "pymysql"):
        module = sys.modules.get(driver)
        error = getattr(module, "Error", None)
        if isinstance(error, type) and isinstance(exc, error):
            operational = getattr(module, "OperationalError", None)
            if isinstance(operational, type) and isinstance(exc, operational):
                return "the database is unreachable"
            return "the database refused the request"
    redis = sys.modules.get("redis.exceptions")
    if redis is not None and isinstance(exc, redis.RedisError):
        return "the job queue is unreachable"
    return None

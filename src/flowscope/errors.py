"""The one error type flowscope raises for bad input, with a status for the web layers."""

from __future__ import annotations


class FlowscopeError(Exception):
    """A problem a user can act on: a message that names it, and an HTTP status.

    Interfaces render it as one clear line (CLI) or as ``{"ok": false, "error": ...}``
    (web); it never reaches a user as a stack trace. ``message`` goes to whoever asked, so
    it never holds a path of the machine, a backing service's address or a library's own
    error text; those go in ``detail``, which the web layers write to the server's log and
    the CLI prints to its operator, never into an answer.
    """

    status: int = 400

    def __init__(
        self, message: str, *, status: int | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        if status is not None:
            self.status = status

    @property
    def for_operator(self) -> str:
        """The message with its detail, for a terminal or a log line."""
        return f"{self.message} ({self.detail})" if self.detail else self.message

    def __str__(self) -> str:
        return self.message


class NotFoundError(FlowscopeError):
    """An experiment, run, model or file that does not exist."""

    status = 404


class ConfigError(FlowscopeError):
    """A setting with a bad value; raised at start-up, naming the setting."""

    status = 500


class MissingDependencyError(FlowscopeError):
    """An optional library is not installed; the message names the extra to install."""

    status = 500

"""The tracking SDK: runs, the durable journal and its writer, evaluation, profiles."""

from flowscope.tracking.run import KINDS, Run, start_run

__all__ = ["KINDS", "Run", "start_run"]

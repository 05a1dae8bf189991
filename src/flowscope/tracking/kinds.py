"""Run kinds: the ``flowscope.kind`` tag the SDK writes on every run, and how a reader
tells a run's kind from its tags. One home for every writer and reader of the tag."""

from __future__ import annotations

from collections.abc import Mapping

KIND_TAG = "flowscope.kind"
KINDS = ("training", "inference", "tuning", "trial", "evaluation")
# Plain MLflow runs carry no kind tag; they are training runs, as flowscope's own are.
DEFAULT_KIND = "training"


def run_kind(tags: Mapping[str, str | None]) -> str:
    """The kind of a run with these tags: its ``flowscope.kind`` tag, else training."""
    return str(tags.get(KIND_TAG, DEFAULT_KIND))

"""The names flowscope writes into the registry: lifecycle states and aliases, the tags on
versions, the tags of decision records and of the registry lock.

A leaf module: every module of :mod:`flowscope.registry` (and the reports and dashboard
that read what it wrote) takes the names from here, so a tag is spelt once.

- A **version** carries its lifecycle state (``flowscope.lifecycle``), the reason for it
  in words and the whole decision as JSON (:func:`version_tags`).
- The **aliases** ``staging`` and ``production`` are the truth for those two states; the
  state tag mirrors them and adds ``candidate`` and ``archived``, which only it can say.
- A **decision record** (an evaluation run in ``<model>-lifecycle``) carries the
  ``flowscope.lifecycle.*`` run tags below.
- The **lock** is a registered model ``<model>.flowscope-lock`` with ``flowscope.lock.*``
  tags (see :mod:`flowscope.registry.lock`).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "ACTOR_TAG",
    "AFTER_TAG",
    "ALIASES",
    "AT_TAG",
    "BEFORE_TAG",
    "COMMAND_TAG",
    "DECISION_TAG",
    "LIFECYCLE_TAG",
    "LOCK_EXPIRES_TAG",
    "LOCK_HOLDER_TAG",
    "LOCK_SUFFIX",
    "LOCK_TAG",
    "LOCK_TOKEN_TAG",
    "MODEL_TAG",
    "OUTCOME_TAG",
    "POLICY_TAG",
    "REASON_TAG",
    "RETRAINED_FROM_TAG",
    "STATES",
    "SUMMARY_TAG",
    "WHY_TAG",
    "version_tags",
]

# Lifecycle states, and the aliases that hold the two of them a serving client follows.
STATES = ("candidate", "staging", "production", "archived")
ALIASES = ("staging", "production")

# Tags on a model version.
LIFECYCLE_TAG = "flowscope.lifecycle"
REASON_TAG = "flowscope.lifecycle.reason"
DECISION_TAG = "flowscope.lifecycle.decision"

# Tags on a training run: which champion a `flowscope retrain` challenger was trained like.
RETRAINED_FROM_TAG = "flowscope.retrained_from"

# Tags on a decision record (one run per promotion attempt).
MODEL_TAG = "flowscope.lifecycle.model"
OUTCOME_TAG = "flowscope.lifecycle.outcome"
COMMAND_TAG = "flowscope.lifecycle.command"
ACTOR_TAG = "flowscope.lifecycle.by"
AT_TAG = "flowscope.lifecycle.at"
POLICY_TAG = "flowscope.lifecycle.policy"
BEFORE_TAG = "flowscope.lifecycle.aliases_before"
AFTER_TAG = "flowscope.lifecycle.aliases_after"
WHY_TAG = "flowscope.lifecycle.alias_reasons"
SUMMARY_TAG = "flowscope.lifecycle.summary"

# The registry lock: a registered model with this suffix, tagged with these.
LOCK_SUFFIX = ".flowscope-lock"
LOCK_TAG = "flowscope.lock"  # the locked model's name; marks a lock among models
LOCK_TOKEN_TAG = "flowscope.lock.token"
LOCK_HOLDER_TAG = "flowscope.lock.holder"
LOCK_EXPIRES_TAG = "flowscope.lock.expires_ms"

# MLflow caps tag values; a decision's JSON is cut rather than refused.
_REASON_CHARS = 5000
_DECISION_CHARS = 90_000


def version_tags(state: str, reason: str, decision: dict[str, Any]) -> dict[str, str]:
    """The tags recording a decision on a version: its state, the reason in words, and the
    whole decision (gate values, evidence, comparison, policy digest, who, when) as JSON."""
    return {
        LIFECYCLE_TAG: state,
        REASON_TAG: reason[:_REASON_CHARS],
        DECISION_TAG: json.dumps(decision, sort_keys=True, default=str)[:_DECISION_CHARS],
    }

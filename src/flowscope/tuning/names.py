"""The names a study and its trials are recorded under: tags, attributes, metrics, states."""

from __future__ import annotations

import uuid

# Study user attributes (visible in Optuna's own tools too).
PARENT_LOCAL_ID_ATTR = "flowscope.parent_local_id"
PARENT_RUN_ID_ATTR = "flowscope.parent_run_id"
TRIALS_STARTED_ATTR = "flowscope.trials_started"

# Tags.
STUDY_TAG = "flowscope.study"
# On the parent: the metric name trial runs record the objective under (``value`` unless
# the caller named it), so readers need not guess it from the trials' metrics.
OBJECTIVE_TAG = "flowscope.objective"
TRIAL_NUMBER_TAG = "flowscope.trial_number"
TRIAL_STATE_TAG = "flowscope.trial_state"
BEST_TRIAL_TAG = "flowscope.best_trial"
BEST_PARAMS_TAG = "flowscope.best_params"

# Metrics of a trial run; the objective's own metric name is the caller's.
DURATION_METRIC = "duration_s"
TRIAL_NUMBER_METRIC = "trial_number"
INTERMEDIATE_PREFIX = "intermediate_"

# Optuna's trial state -> the MLflow status of its run, and back (a trial still running
# has a RUNNING run and no state tag yet).
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
TRIAL_STATE = {"FINISHED": "COMPLETE", "KILLED": "PRUNED", "FAILED": "FAIL", "RUNNING": "RUNNING"}
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def trial_local_id(parent_local_id: str, trial_id: int) -> str:
    """The journal name of a trial's run: the same in every process, so that whichever
    worker finds the trial stale can find its run."""
    return uuid.uuid5(uuid.UUID(hex=parent_local_id), str(trial_id)).hex

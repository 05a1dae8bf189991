"""What an inference run holds, computed from the predictions of one window or batch.

Pure functions: observations in, a table and a dict of metrics out. The monitor decides
when to call them and writes the result as a run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowscope.serving.drift import drift_metrics, feature_drift

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from flowscope.serving.model import ServedModel

_UNSAFE = re.compile(r"[^\w.\- /:]")
OUTPUT_COLUMNS = ("request_id", "timestamp", "model_version", "latency_ms", "prediction")


@dataclass
class Observation:
    """One answered request: id, arrival, latency, answer, and its inputs, the rows
    ``offset`` to ``offset + rows`` of the model call's ``inputs`` arrays."""

    request_id: str
    timestamp: float  # seconds since the epoch, when the request arrived
    latency: float  # seconds
    labels: list[Any]
    probabilities: np.ndarray | None
    inputs: dict[str, np.ndarray]
    offset: int = 0

    @property
    def rows(self) -> int:
        return len(self.labels)


def metric_key(text: object) -> str:
    """A label or feature name made safe inside an MLflow metric name."""
    return _UNSAFE.sub("_", str(text))[:200] or "_"


def predictions_table(model: ServedModel, observations: Sequence[Observation]) -> pd.DataFrame:
    """Inputs and answers, one row per prediction: the input columns, then ``request_id``,
    ``timestamp`` (UTC), ``model_version``, ``latency_ms``, ``prediction``, and for
    classifiers ``confidence`` and ``proba_<class>``."""
    import numpy as np
    import pandas as pd

    names = model.schema.names
    parts = _input_parts(observations)
    table = pd.DataFrame(
        {name: np.concatenate([part[name] for part in parts]) for name in names}, copy=False
    )
    repeats = [observation.rows for observation in observations]
    outputs: dict[str, Any] = {
        "request_id": np.repeat([o.request_id for o in observations], repeats),
        "timestamp": pd.to_datetime(
            np.repeat([o.timestamp for o in observations], repeats), unit="s", utc=True
        ),
        "model_version": model.version,
        "latency_ms": np.repeat([o.latency * 1000 for o in observations], repeats),
        "prediction": [label for o in observations for label in o.labels],
    }
    if model.classes is not None:
        probabilities = np.vstack([o.probabilities for o in observations])
        outputs["confidence"] = probabilities.max(axis=1)
        for index, name in enumerate(model.class_names):
            outputs[f"proba_{name}"] = probabilities[:, index]
    for name, values in outputs.items():
        # an input column of the same name keeps its name; the answer gets a prefix
        table["flowscope_" + name if name in names else name] = values
    return table


def _input_parts(observations: Sequence[Observation]) -> list[dict[str, np.ndarray]]:
    """The observations' input rows, in their order, as slices of the model calls' arrays;
    neighbours from one call are one slice, so the cost grows with calls, not requests."""
    parts: list[dict[str, np.ndarray]] = []
    arrays: dict[str, np.ndarray] | None = None
    start = stop = 0

    def close() -> None:
        if arrays is not None:
            whole = start == 0 and stop == len(next(iter(arrays.values()), ()))
            parts.append(arrays if whole else {k: v[start:stop] for k, v in arrays.items()})

    for observation in observations:
        if observation.inputs is arrays and observation.offset == stop:
            stop += observation.rows
            continue
        close()
        arrays, start = observation.inputs, observation.offset
        stop = start + observation.rows
    close()
    return parts


def window_metrics(
    model: ServedModel,
    observations: Sequence[Observation],
    table: pd.DataFrame,
    *,
    errors: int = 0,
    dropped: int = 0,
    drift_threshold: float = 0.2,
    drift_min_samples: int = 30,
) -> tuple[dict[str, float], dict[str, float]]:
    """The run's metrics, and the drift score of each feature.

    Counts (``samples``, ``requests``, ``errors``), confidence (``avg_confidence``,
    ``min_confidence``, ``max_confidence``), the class distribution (``count_<class>``,
    ``percentage_<class>``, ``unique_classes``) or, for regression, the predictions'
    ``prediction_mean``/``_std``/``_min``/``_max``; request latency
    (``latency_p50_ms``/``p95``/``p99``), and drift (:func:`~.drift.drift_metrics`) once
    the window has ``drift_min_samples`` predictions and the model a training profile.
    """
    import numpy as np

    samples = len(table)
    metrics: dict[str, float] = {
        "samples": float(samples),
        "requests": float(len(observations)),
        "errors": float(errors),
    }
    if dropped:
        metrics["dropped"] = float(dropped)
    if observations:
        latencies = np.array([o.latency for o in observations]) * 1000
        for q in (50, 95, 99):
            metrics[f"latency_p{q}_ms"] = float(np.percentile(latencies, q))
    if samples and model.classes is not None:
        confidence = table["confidence" if "confidence" in table else "flowscope_confidence"]
        metrics.update(
            avg_confidence=float(confidence.mean()),
            min_confidence=float(confidence.min()),
            max_confidence=float(confidence.max()),
        )
        predicted = table["prediction" if "prediction" in table else "flowscope_prediction"]
        counts = predicted.astype(str).value_counts()
        for name in model.class_names:
            count = int(counts.get(name, 0))
            metrics[f"count_{metric_key(name)}"] = float(count)
            metrics[f"percentage_{metric_key(name)}"] = 100.0 * count / samples
        metrics["unique_classes"] = float((counts > 0).sum())
    elif samples:
        values = np.asarray([label for o in observations for label in o.labels], dtype=np.float64)
        metrics.update(
            prediction_mean=float(values.mean()),
            prediction_std=float(values.std()),
            prediction_min=float(values.min()),
            prediction_max=float(values.max()),
        )
    scores: dict[str, float] = {}
    if model.profile and samples >= drift_min_samples:
        scores = feature_drift(model.profile, table[model.schema.names])
        drift = drift_metrics({metric_key(k): v for k, v in scores.items()}, drift_threshold)
        metrics.update(drift)
    return metrics, scores

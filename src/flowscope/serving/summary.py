"""What an inference run holds, computed from the predictions of one window or batch.

Pure functions: a window's requests as columns (:class:`~.packing.Packed`) in, a table and
a dict of metrics out. The monitor decides when to call them and writes the result as a
run. The table is put together from the window's arrays as they are, into an Arrow table
written as parquet without a detour through pandas, and with no Python object per request.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flowscope.serving.drift import drift_metrics, feature_drift

if TYPE_CHECKING:
    import pyarrow as pa

    from flowscope.serving.model import ServedModel
    from flowscope.serving.packing import Packed

_UNSAFE = re.compile(r"[^\w.\- /:]")
DRIFT_ROWS = 20_000  # drift is estimated on at most this many rows of a window, evenly spread
# Signature types stored from their NumPy arrays as they are; any other is text.
_ARROW_TYPES = {"double", "float", "long", "integer", "boolean"}


def metric_key(text: object) -> str:
    """A label or feature name made safe inside an MLflow metric name."""
    return _UNSAFE.sub("_", str(text))[:200] or "_"


def predictions_table(model: ServedModel, window: Packed) -> pa.Table:
    """Inputs and answers, one row per prediction, as an Arrow table: the input columns,
    then ``request_id``, ``timestamp`` (UTC), ``model_version``, ``latency_ms``,
    ``prediction``, and for classifiers ``confidence`` and ``proba_<class>``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    names = model.schema.names
    columns: dict[str, Any] = {}
    for column in model.schema.columns:
        values = window.inputs[column.name]
        if column.type in _ARROW_TYPES:  # NumPy numbers are taken as they are, no copy
            columns[column.name] = pa.array(values)
        else:
            columns[column.name] = pa.array(values, pa.string())
    repeats = window.rows
    total = window.total
    # one dictionary entry per request, not one string per row
    codes, ids = pd.factorize(np.asarray(window.request_ids, dtype=object))
    stamps = np.repeat(window.times[:, 0] * 1e9, repeats)
    outputs: dict[str, Any] = {
        "request_id": pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(codes.astype(np.int32), repeats)), pa.array(ids, pa.string())
        ),
        "timestamp": pa.array(stamps.astype(np.int64), pa.timestamp("ns", "UTC")),
        "model_version": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(total, np.int32)), pa.array([model.version])
        ),
        "latency_ms": pa.array(np.repeat(window.times[:, 1] * 1000, repeats)),
    }
    probabilities = window.probabilities
    if model.classes is not None and probabilities is not None:
        outputs["prediction"] = pa.DictionaryArray.from_arrays(
            pa.array(probabilities.argmax(axis=1).astype(np.int32)), pa.array(model.classes)
        )
        outputs["confidence"] = pa.array(probabilities.max(axis=1))
        for index, name in enumerate(model.class_names):
            outputs[f"proba_{name}"] = pa.array(np.ascontiguousarray(probabilities[:, index]))
    else:
        outputs["prediction"] = pa.array(window.labels)
    if window.explained:
        # the SHAP contributions kept with the predictions; NaN for rows not explained
        features = next(iter(window.explained.values())).features
        matrix = np.full((total, len(features)), np.nan)
        starts = np.concatenate([[0], np.cumsum(repeats)])
        for request, explained in window.explained.items():
            matrix[starts[request] : starts[request + 1]] = explained.contributions
        for j, feature in enumerate(features):
            outputs[f"shap_{feature}"] = pa.array(matrix[:, j])
    for name, values in outputs.items():
        # an input column of the same name keeps its name; the answer gets a prefix
        columns["flowscope_" + name if name in names else name] = values
    return pa.table(columns)


def summarise(
    model: ServedModel,
    window: Packed,
    *,
    errors: int = 0,
    dropped: int = 0,
    drift_threshold: float = 0.2,
    drift_min_samples: int = 30,
) -> tuple[pa.Table, dict[str, float], dict[str, float]]:
    """The window's table (:func:`predictions_table`), its metrics, and the drift score
    of each feature.

    Metrics: counts (``samples``, ``requests``, ``errors``), confidence
    (``avg_confidence``, ``min_confidence``, ``max_confidence``), the class distribution
    (``count_<class>``, ``percentage_<class>``, ``unique_classes``) or, for regression,
    ``prediction_mean``/``_std``/``_min``/``_max``; request latency
    (``latency_p50_ms``/``p95``/``p99``); and drift (:func:`~.drift.drift_metrics`) once
    the window has ``drift_min_samples`` predictions and the model a training profile,
    estimated on at most ``DRIFT_ROWS`` rows spread evenly over the window.
    """
    import numpy as np
    import pandas as pd

    probabilities = window.probabilities if model.classes is not None else None
    table = predictions_table(model, window)
    samples = table.num_rows
    metrics: dict[str, float] = {
        "samples": float(samples),
        "requests": float(len(window.request_ids)),
        "errors": float(errors),
    }
    if dropped:
        metrics["dropped"] = float(dropped)
    if window.request_ids:
        latencies = window.times[:, 1] * 1000
        for q in (50, 95, 99):
            metrics[f"latency_p{q}_ms"] = float(np.percentile(latencies, q))
    if samples and probabilities is not None:
        confidence = probabilities.max(axis=1)
        metrics.update(
            avg_confidence=float(confidence.mean()),
            min_confidence=float(confidence.min()),
            max_confidence=float(confidence.max()),
        )
        # labels are the arg-max of the probabilities: count the indices
        counts = np.bincount(probabilities.argmax(axis=1), minlength=len(model.class_names))
        for name, count in zip(model.class_names, counts.tolist(), strict=True):
            metrics[f"count_{metric_key(name)}"] = float(count)
            metrics[f"percentage_{metric_key(name)}"] = 100.0 * count / samples
        metrics["unique_classes"] = float((counts > 0).sum())
    elif samples:
        values = table.column("prediction").to_numpy().astype(np.float64)
        metrics.update(
            prediction_mean=float(values.mean()),
            prediction_std=float(values.std()),
            prediction_min=float(values.min()),
            prediction_max=float(values.max()),
        )
    scores: dict[str, float] = {}
    if model.profile and samples >= drift_min_samples:
        step = max(1, -(-samples // DRIFT_ROWS))
        sample = pd.DataFrame(
            {name: window.inputs[name][::step] for name in model.schema.names}, copy=False
        )
        scores = feature_drift(model.profile, sample)
        metrics.update(
            drift_metrics({metric_key(k): v for k, v in scores.items()}, drift_threshold)
        )
    return table, metrics, scores

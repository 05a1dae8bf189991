"""Predictions without a server: ``flowscope predict`` on a file or on one JSON record,
each logged as an inference run like the service's."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.serving.model import ModelRef, Predicted, ServedModel, load_served_model
from flowscope.serving.packing import Observation

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.config import Settings


@dataclass
class PredictionResult:
    """What a CLI prediction produced, and where its inference run is."""

    model: str
    version: str
    rows: int
    table: pd.DataFrame
    answers: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    delivered: bool = True
    class_counts: dict[str, int] = field(default_factory=dict)  # by class name


def predict_file(
    settings: Settings, model_ref: str, input_path: str | Path, output_path: str | Path | None
) -> PredictionResult:
    """Predict every row of a CSV/XLSX file with ``model_ref``, write the rows with their
    ``prediction``, ``confidence`` and ``proba_<class>`` columns to ``output_path`` (CSV),
    and log the whole file as one batch inference run.

    A column named like the training target is left out of the inputs (a labelled file
    can be scored as it is) and kept in the output beside the prediction.
    """
    from flowscope.modeling.data import read_table

    model = load_served_model(settings, ModelRef.parse(model_ref))
    frame = read_table(input_path)
    target = ((model.profile or {}).get("target") or {}).get("name")
    inputs = frame
    if target in frame.columns and target not in model.schema.names:
        inputs = frame.drop(columns=[target])
    columns = model.schema.checked_frame(inputs)
    result = _predict(settings, model, columns, "batch", Path(input_path).name)
    table = frame.copy()
    for column in result.table.columns:
        table[column] = result.table[column].to_numpy()
    result.table = table
    if output_path is not None:
        table.to_csv(output_path, index=False)
    return result


def predict_record(settings: Settings, model_ref: str, payload: Any) -> PredictionResult:
    """Predict one record (a dict) or a list of records, logged as a single-prediction
    inference run; ``answers`` holds what ``POST /predict`` would answer for each."""
    from flowscope.serving._http import records_of

    model = load_served_model(settings, ModelRef.parse(model_ref))
    return _predict(settings, model, records_of(payload, model.schema), "single", None)


def _predict(
    settings: Settings,
    model: ServedModel,
    columns: dict[str, list[Any]],
    kind: str,
    filename: str | None,
) -> PredictionResult:
    import pandas as pd

    from flowscope.serving.service import prediction_rows

    arrived = time.time()
    started = time.perf_counter()
    predicted: Predicted = model.predict_columns(columns)
    latency = time.perf_counter() - started
    observation = Observation(
        uuid.uuid4().hex, arrived, latency, predicted, 0, len(predicted.labels)
    )
    table = pd.DataFrame({"prediction": predicted.labels})
    if predicted.probabilities is not None:
        table["confidence"] = predicted.confidence
        for index, name in enumerate(model.class_names):
            table[f"proba_{name}"] = predicted.probabilities[:, index]
    counts = table["prediction"].astype(str).value_counts() if model.classes is not None else {}
    result = PredictionResult(
        model=model.name,
        version=model.version,
        rows=len(table),
        table=table,
        answers=prediction_rows(model, predicted),
        class_counts={model.name_of(label): int(count) for label, count in counts.items()},
    )
    if settings.monitor:
        from flowscope.serving.inference_run import log_predictions

        run = log_predictions(settings, model, [observation], kind=kind, filename=filename)
        result.run_id, result.delivered = run.run_id, run.end()
    return result

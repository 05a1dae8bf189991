"""Predictions outside the service: ``flowscope predict`` on a file or on one JSON record,
and the dashboard's predictions of a loaded model, each logged as an inference run like
the service's (single or batch)."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope._output import frame_to_csv
from flowscope.serving.model import ModelRef, Predicted, ServedModel, load_served_model
from flowscope.serving.packing import Observation

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.config import Settings
    from flowscope.serving.schema import InputSchema

_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class PredictionResult:
    """What a prediction outside the service produced, and where its inference run is."""

    model: str
    version: str
    rows: int
    table: pd.DataFrame
    answers: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    delivered: bool = True
    class_counts: dict[str, int] = field(default_factory=dict)  # by class name
    request_id: str = ""
    latency: float = 0.0  # seconds the model call took


def predict_file(
    settings: Settings, model_ref: str, input_path: str | Path, output_path: str | Path | None
) -> PredictionResult:
    """Predict every row of a CSV/XLSX file with ``model_ref``, write the rows with their
    ``prediction``, ``confidence`` and ``proba_<class>`` columns to ``output_path`` (CSV,
    text cells safe from spreadsheet formulas), and log the whole file as one batch
    inference run.

    A column named like the training target is left out of the inputs (a labelled file
    can be scored as it is) and kept in the output beside the prediction.
    """
    from flowscope.modeling.data import read_table

    model = load_served_model(settings, ModelRef.parse(model_ref))
    result = predict_frame(settings, model, read_table(input_path), Path(input_path).name)
    if output_path is not None:
        Path(output_path).write_text(frame_to_csv(result.table), encoding="utf-8")
    return result


def predict_record(settings: Settings, model_ref: str, payload: Any) -> PredictionResult:
    """Predict one record (a dict) or a list of records, logged as a single-prediction
    inference run; ``answers`` holds what ``POST /predict`` would answer for each."""
    model = load_served_model(settings, ModelRef.parse(model_ref))
    return predict_payload(settings, model, payload)


def predict_payload(settings: Settings, model: ServedModel, payload: Any) -> PredictionResult:
    """``POST /predict``'s body (one record or a list of records) predicted by a loaded
    ``model`` and logged as a single-prediction inference run."""
    from flowscope.serving.request_input import records_of

    return _predict(settings, model, records_of(payload, model.schema), "single", None)


def predict_frame(
    settings: Settings, model: ServedModel, frame: pd.DataFrame, filename: str
) -> PredictionResult:
    """Every row of ``frame`` (an uploaded file named ``filename``) predicted and logged as
    one batch inference run; ``table`` is the rows with the prediction columns added.

    A column named like the training target is left out of the inputs and kept in the
    table; a column of the wrong type or a missing one is a 422 naming it."""
    target = ((model.profile or {}).get("target") or {}).get("name")
    inputs = frame
    if target in frame.columns and target not in model.schema.names:
        inputs = frame.drop(columns=[target])
    columns = model.schema.checked_frame(inputs)
    result = _predict(settings, model, columns, "batch", filename)
    result.table = frame.assign(**{name: result.table[name].to_numpy() for name in result.table})
    return result


def read_prediction_file(path: Path, schema: InputSchema, max_upload_bytes: int) -> pd.DataFrame:
    """An uploaded CSV or XLSX file of rows to predict. A CSV is read as ``flowscope
    serve``'s ``/predict/batch`` reads one (the model's text columns as text); an XLSX
    workbook's first sheet through :func:`~flowscope.modeling.data.read_table`, once
    :func:`~flowscope.modeling.file_checks.check_xlsx` has found it safe to open (no zip
    bomb, no entity declarations). Errors name the file, never its place on the server."""
    from flowscope.errors import FlowscopeError
    from flowscope.modeling.data import read_table
    from flowscope.modeling.file_checks import check_xlsx
    from flowscope.serving.request_input import read_csv

    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        check_xlsx(path, path.name, max_upload_bytes)
        return read_table(path, path.name)  # its name as uploaded, not the server's folder
    if suffix not in (".csv", ".txt", ""):
        raise FlowscopeError(
            f"cannot read {path.name}: unknown file type {suffix!r}; send a .csv or .xlsx file"
        )
    return read_csv(path.read_bytes(), schema)


def save_predictions(folder: Path, table: pd.DataFrame, filename: str) -> str:
    """Write ``table`` as formula-safe CSV under ``folder`` for a later download; returns
    its id (see :func:`saved_predictions`)."""
    download_id = uuid.uuid4().hex
    target = folder / download_id
    target.mkdir(parents=True)
    name = f"predictions-{Path(filename).stem or 'upload'}.csv"
    (target / name).write_text(frame_to_csv(table), encoding="utf-8")
    return download_id


def saved_predictions(folder: Path, download_id: str) -> Path:
    """The CSV :func:`save_predictions` wrote as ``download_id``; 404 for any other id."""
    from flowscope.errors import NotFoundError

    found = list((folder / download_id).glob("*.csv")) if _ID.fullmatch(download_id) else []
    if not found:
        raise NotFoundError(f"no saved predictions {download_id[:40]!r}")
    return found[0]


def _predict(
    settings: Settings,
    model: ServedModel,
    columns: dict[str, list[Any]],
    kind: str,
    filename: str | None,
) -> PredictionResult:
    import pandas as pd

    from flowscope.serving.service import prediction_columns, prediction_rows

    arrived = time.time()
    started = time.perf_counter()
    predicted: Predicted = model.predict_columns(columns)
    latency = time.perf_counter() - started
    observation = Observation(
        uuid.uuid4().hex, arrived, latency, predicted, 0, len(predicted.labels)
    )
    table = pd.DataFrame(prediction_columns(model, predicted))
    counts = table["prediction"].astype(str).value_counts() if model.classes is not None else {}
    result = PredictionResult(
        model=model.name,
        version=model.version,
        rows=len(table),
        table=table,
        answers=prediction_rows(model, predicted),
        class_counts={model.name_of(label): int(count) for label, count in counts.items()},
        request_id=observation.request_id,
        latency=latency,
    )
    if settings.monitor:
        from flowscope.serving.inference_run import log_predictions

        run = log_predictions(settings, model, [observation], kind=kind, filename=filename)
        result.run_id, result.delivered = run.run_id, run.end()
    return result

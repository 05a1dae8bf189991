"""Writing one inference run: a model version's predictions in a window or batch as a
run of ``<task>-inference``, with its params, tags, metrics (:mod:`~.summary`), the
predictions as parquet and the drift report, all through flowscope's journal.

The monitor's sinks call :func:`write_inference_run` for each window; ``flowscope
predict`` calls :func:`log_predictions`. A window sent again after its helper died goes
on in the journal that helper left (:func:`resumed_run`).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowscope.serving.summary import metric_key, summarise
from flowscope.serving.window import VersionGroup, WindowJob, packed

if TYPE_CHECKING:
    from flowscope.config import Settings
    from flowscope.serving.model import ServedModel
    from flowscope.serving.packing import Observation
    from flowscope.tracking.journal import Journal
    from flowscope.tracking.run import Run

MODEL_TAG = "flowscope.model_name"
VERSION_TAG = "flowscope.model_version"
TYPE_TAG = "flowscope.prediction_type"
WINDOW_TAG = "flowscope.window_id"
# JSON of {class key in count_<class>: class name}, where training named the classes.
CLASS_NAMES_TAG = "flowscope.class_names"
_TAG_LIMIT = 5000  # characters of a tag value every MLflow store keeps
# Bytes of distinct values past which a parquet column gives up dictionary encoding
# (Arrow: 1 MiB). Served numeric inputs are mostly distinct, and a window's 100,000 rows
# fit under 1 MiB: each column was encoded against a dictionary as large as itself, which
# took 197 ms and 33 MB against 37 ms and 27 MB; repeated values still get a dictionary.
_DICTIONARY_PAGE = 16 * 1024


def log_predictions(
    settings: Settings,
    model: ServedModel,
    observations: list[Observation],
    *,
    kind: str = "batch",
    filename: str | None = None,
) -> Run:
    """Log ``observations`` of ``model`` as one inference run now (what ``flowscope
    predict`` does), waiting up to ``flush_timeout`` for its delivery."""
    start = min((o.timestamp for o in observations), default=time.time())
    job = WindowJob([], start, time.time(), kind, filename)
    run = write_inference_run(settings, VersionGroup(model, observations), job)
    run.end()
    return run


def write_inference_run(
    settings: Settings,
    group: VersionGroup,
    job: WindowJob,
    local_id: str | None = None,
    resume: Journal | None = None,
) -> Run:
    """Write one inference run for ``group`` (a model version's predictions in a window
    or batch) into the journal named ``local_id``; the caller ends it.

    ``resume`` is that journal as a writer before this one left it: the run goes on in it,
    the records already there are not written again (the same window gives the same
    records, in the same order)."""
    from flowscope.tracking.run import start_run

    model = group.model
    started = _iso(job.start)
    params: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "model_alias": model.alias or "",
        "window_start": started,
        "window_end": _iso(job.end),
        "prediction_type": job.kind,
    }
    if job.filename is not None:
        params["input_file"] = job.filename
    tags = {
        MODEL_TAG: model.name,
        VERSION_TAG: model.version,
        TYPE_TAG: job.kind,
        "flowscope.model_alias": model.alias or "",
        "flowscope.source_run": model.run_id or "",
    }
    if local_id is not None:
        tags[WINDOW_TAG] = local_id
    names = {metric_key(label): model.name_of(label) for label in model.classes or []}
    if any(key != name for key, name in names.items()):
        text = json.dumps(names)
        if len(text) <= _TAG_LIMIT:  # names too long for a tag are left to the model
            tags[CLASS_NAMES_TAG] = text
    run_name = f"{model.name}-v{model.version}-{job.kind}-{started.replace(':', '')}"
    if resume is None:
        run = start_run(
            model.task,
            run_name,
            kind="inference",
            params=params,
            tags=tags,
            settings=settings,
            local_id=local_id,
        )
    else:
        run = resumed_run(settings, model.task, resume)
        run.log_params(params)
    try:
        window = packed(group)
        if window.request_ids:
            table, metrics, scores = summarise(
                model,
                window,
                errors=group.errors,
                dropped=group.dropped,
                drift_threshold=settings.drift_threshold,
                drift_min_samples=settings.drift_min_samples,
            )
            run.log_metrics(metrics, timestamp=int(job.end * 1000))
            _log_predictions_files(run, table, csv=job.kind == "batch")
            if scores:
                run.log_dict(_drift_report(model, scores, settings), "drift/drift.json")
        else:
            empty = {"samples": 0.0, "requests": 0.0, "errors": float(group.errors)}
            run.log_metrics(
                {**empty, **({"dropped": float(group.dropped)} if group.dropped else {})}
            )
    except BaseException as exc:
        run.log_error(exc)
        run.end("FAILED", timeout=0.0)
        raise
    return run


def _log_predictions_files(run: Run, table: Any, *, csv: bool) -> None:
    """The predictions as ``predictions/predictions.parquet`` (and ``.csv`` for a batch,
    its text cells safe to open in a spreadsheet), written by the run straight into its
    journal."""
    run.log_table(_ArrowTable(table), "predictions/predictions.parquet")
    if csv:
        from flowscope._output import frame_to_csv

        run.log_text(frame_to_csv(table.to_pandas()), "predictions/predictions.csv")


class _ArrowTable:
    """An Arrow table that ``Run.log_table`` can write as parquet like a DataFrame, so a
    window's table is neither converted to pandas nor copied once more."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def to_parquet(self, path: Any, index: bool = False) -> None:
        import pyarrow.parquet as pq

        pq.write_table(self.table, path, dictionary_pagesize_limit=_DICTIONARY_PAGE)


def _drift_report(model: ServedModel, scores: dict[str, float], settings: Settings) -> dict:
    threshold = settings.drift_threshold
    return {
        "threshold": threshold,
        "reference_run": model.run_id,
        "features": {
            name: {"psi": value, "drifted": value > threshold}
            for name, value in sorted(scores.items(), key=lambda item: -item[1])
        },
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


def resumed_run(settings: Settings, task: str, journal: Journal) -> Run:
    """A run that goes on in ``journal``, which a dead writer left: the records it holds
    are not appended again, and a torn last one is cut off first."""
    from flowscope.tracking.run import Run
    from flowscope.tracking.store import StoreAccess
    from flowscope.tracking.writer import Writer

    offsets = [offset for offset, _ in journal.read(0, complete=True)]
    count = len(offsets)
    os.truncate(journal.path, offsets[-1] if offsets else 0)

    class Resumed(Run):
        skip = count - 1  # the first record, the run's header, is the journal's own

        def _append(self, record: dict[str, Any]) -> None:
            if self.skip > 0:
                self.skip -= 1
                return
            super()._append(record)

    writer = Writer(journal, StoreAccess(settings), max_backoff=settings.max_backoff)
    run = Resumed(
        task=task,
        kind="inference",
        local_id=journal.local_id,
        settings=settings,
        journal=journal,
        writer=writer,
    )
    # files written again go to fresh places: the writer may be delivering those that the
    # journal's records already name
    stashed = journal.files_dir
    taken = [int(p.name) for p in stashed.iterdir() if p.name.isdigit()] if stashed.is_dir() else []
    run._stash_index = max(taken, default=0)
    return run

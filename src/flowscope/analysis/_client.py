"""The run store answered through ``MlflowClient.search_runs``: for tracking servers, and for
what the SQL store does not translate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flowscope.analysis import _sql
from flowscope.analysis._rows import (
    MAX_PAGE_SIZE,
    PARENT_RUN_TAG,
    RunPage,
    check_count_by,
    check_kind,
    check_page,
    experiment_ints,
    metric_summary,
    run_row,
    shown_tag,
)
from flowscope.analysis.best import BestRun, best_run, check_best, is_score
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.tracking.kinds import DEFAULT_KIND, KIND_TAG, run_kind

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run as MlflowRun

    from flowscope.config import Settings


class ClientRunStore:
    """The same answers through ``MlflowClient.search_runs``, reading every matching run:
    for tracking servers, and for what :class:`SqlRunStore` does not translate."""

    def __init__(self, settings: Settings, client: MlflowClient | None = None) -> None:
        from flowscope.mlflow_client import client_for

        self._client = client or client_for(settings)

    def close(self) -> None:
        """Nothing to release; here so both stores can be closed alike."""

    def experiment_id_named(self, name: str) -> str | None:
        """The id of the active experiment called ``name``, if there is one."""
        experiment = self._client.get_experiment_by_name(name)
        if experiment is None or experiment.lifecycle_stage != "active":
            return None
        return str(experiment.experiment_id)

    def _experiments(self, experiment_ids: Sequence[str]) -> list[str]:
        experiment_ints(experiment_ids)
        for experiment_id in experiment_ids:
            self._experiment_entity(experiment_id)
        return [str(i) for i in experiment_ids]

    def _experiment_entity(self, experiment_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            experiment = self._client.get_experiment(str(experiment_id))
        except MlflowException:
            experiment = None
        if experiment is None or experiment.lifecycle_stage != "active":
            raise NotFoundError(f"no active experiment with id {experiment_id!r}")
        return experiment

    def _all_runs(
        self,
        experiment_ids: Sequence[str],
        kind: str | None,
        filter_string: str,
        order_by: Sequence[str] | None = None,
    ) -> list[MlflowRun]:
        from mlflow.exceptions import MlflowException

        check_kind(kind)
        # Parsed here too so that both stores word a bad filter or order_by alike.
        _sql.parse_filter(filter_string)
        _sql.parse_order_by(order_by or [])
        ids = self._experiments(experiment_ids)
        where = filter_string
        if kind is not None and kind != DEFAULT_KIND:
            # Other kinds are a plain tag filter; training also means "no tag", which
            # MLflow's AND-only syntax cannot say, so it is filtered below.
            clause = f"tags.`{KIND_TAG}` = '{kind}'"
            where = f"{filter_string} AND {clause}" if filter_string.strip() else clause
        runs: list[MlflowRun] = []
        token = None
        try:
            while True:
                found = self._client.search_runs(
                    ids,
                    filter_string=where,
                    order_by=list(order_by or []),
                    max_results=MAX_PAGE_SIZE,
                    page_token=token,
                )
                runs.extend(found)
                token = found.token
                if not token:
                    break
        except MlflowException as exc:
            raise FlowscopeError(f"bad filter or order_by: {exc.message}") from None
        if kind is not None:
            runs = [run for run in runs if run_kind(run.data.tags) == kind]
        return runs

    def experiments(self) -> list[dict[str, Any]]:
        """Active experiments with their run counts by kind, newest first."""
        from mlflow.entities import ViewType

        experiments: list[Any] = []
        token = None
        while True:
            found = self._client.search_experiments(
                view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
            )
            experiments.extend(found)
            token = found.token
            if not token:
                break
        return [self._describe(experiment) for experiment in experiments]

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        """One active experiment with its run counts; :class:`NotFoundError` otherwise."""
        experiment_ints([experiment_id])
        return self._describe(self._experiment_entity(experiment_id))

    def _describe(self, experiment: Any) -> dict[str, Any]:
        runs = self._all_runs([experiment.experiment_id], None, "")
        by_kind: dict[str, int] = {}
        times = []
        for run in runs:
            kind = run_kind(run.data.tags)
            by_kind[kind] = by_kind.get(kind, 0) + 1
            times += [t for t in (run.info.start_time, run.info.end_time) if t]
        return {
            "experiment_id": experiment.experiment_id,
            "name": experiment.name,
            "creation_time": experiment.creation_time,
            "last_activity": max(times) if times else None,
            "runs": len(runs),
            "by_kind": dict(sorted(by_kind.items())),
        }

    def search(
        self,
        experiment_ids: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
        order_by: list[str] | None = None,
        page: int = 1,
        page_size: int = 50,
        tags: list[str] | None = None,
    ) -> RunPage:
        """One page of the matching runs in MLflow's order, and how many match in all (with
        ``tags``, the rows show only those tags, as :meth:`SqlRunStore.search`'s do)."""
        check_page(page, page_size)
        runs = self._all_runs(experiment_ids, kind, filter_string, order_by)
        start = (page - 1) * page_size
        rows = [run_row(run) for run in runs[start : start + page_size]]
        if tags is not None:
            kept = {f"tags.{key}" for key in (*tags, KIND_TAG, PARENT_RUN_TAG)}
            rows = [
                {k: v for k, v in row.items() if not k.startswith("tags.") or k in kept}
                for row in rows
            ]
        return RunPage(rows, len(runs), page, page_size, list(order_by or []))

    def summary(
        self,
        experiment_ids: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
        metric: str | None = None,
        direction: str | None = None,
    ) -> dict[str, Any]:
        """How many runs match, by kind, and statistics of ``metric``'s latest values."""
        if metric is not None:
            metric_summary(metric, direction, [])
        runs = self._all_runs(experiment_ids, kind, filter_string)
        by_kind: dict[str, int] = {}
        for run in runs:
            kind_of_run = run_kind(run.data.tags)
            by_kind[kind_of_run] = by_kind.get(kind_of_run, 0) + 1
        stats = None
        if metric is not None:
            values = [run.data.metrics[metric] for run in runs if metric in run.data.metrics]
            stats = metric_summary(metric, direction, values)
        return {"total": len(runs), "by_kind": dict(sorted(by_kind.items())), "metric": stats}

    def best(
        self,
        experiment_ids: list[str],
        *,
        metric: str,
        direction: str | None = None,
        value: str = "last",
        kind: str | None = "training",
        filter_string: str = "",
        runners_up: int = 3,
        counts: bool = True,
    ) -> BestRun:
        """The best run as :meth:`SqlRunStore.best` finds it, from every matching run (which
        counts them whatever ``counts`` says)."""
        direction = check_best(metric, direction, value, runners_up)
        rows = [run_row(run) for run in self._all_runs(experiment_ids, kind, filter_string)]
        scored = rows if value == "last" else [self._scored(row, metric, value) for row in rows]
        result = best_run(
            scored, metric, direction, constraints=filter_string or None, runners_up=runners_up
        )
        # the rows keep showing the latest value; the scores say what was ranked
        originals = {row["run_id"]: row for row in rows}
        ranking: list[Mapping[str, Any]] = [
            originals[row["run_id"]] for row in result.ranking[: 1 + runners_up]
        ]
        return replace(
            result,
            winner=ranking[0],
            runners_up=ranking[1:],
            ranking=ranking,
            scores=result.scores[: 1 + runners_up],
        )

    def _scored(self, row: dict[str, Any], metric: str, value: str) -> dict[str, Any]:
        """``row`` with ``metrics.<metric>`` the min or max over the run's steps (NaN left
        out), or without it when no step has a number."""
        column = f"metrics.{metric}"
        copy = {key: item for key, item in row.items() if key != column}
        if column in row:
            history = self._client.get_metric_history(row["run_id"], metric)
            points = [point.value for point in history if is_score(point.value)]
            if points:
                copy[column] = (max if value == "max" else min)(points)
        return copy

    def runs(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Full rows of these active runs, in the order asked."""
        from mlflow.exceptions import MlflowException

        rows, missing = [], []
        for run_id in dict.fromkeys(run_ids):
            try:
                run = self._client.get_run(run_id)
            except MlflowException:
                run = None
            if run is None or run.info.lifecycle_stage != "active":
                missing.append(run_id)
            else:
                rows.append(run_row(run))
        if missing:
            raise NotFoundError(f"no active run with id {', '.join(map(repr, missing))}")
        return rows

    def keys(self, experiment_ids: list[str], kind: str | None = None) -> dict[str, list[str]]:
        """The param, metric and tag names present in these experiments' active runs."""
        params: set[str] = set()
        metrics: set[str] = set()
        tags: set[str] = set()
        for run in self._all_runs(experiment_ids, kind, ""):
            params.update(run.data.params)
            metrics.update(run.data.metrics)
            tags.update(key for key in run.data.tags if shown_tag(key))
        return {"params": sorted(params), "metrics": sorted(metrics), "tags": sorted(tags)}

    def count_by(
        self,
        experiment_ids: list[str],
        by: list[str],
        *,
        kind: str | None = None,
        filter_string: str = "",
    ) -> dict[tuple[str | None, ...], int]:
        """How many matching runs share each combination of ``by``, counted from every one."""
        check_count_by(by)
        counts: dict[tuple[str | None, ...], int] = {}
        for run in self._all_runs(experiment_ids, kind, filter_string):
            group = tuple(
                run.info.status
                if item == "status"
                else run.data.tags.get(item.removeprefix("tags.").strip("`"))
                for item in by
            )
            counts[group] = counts.get(group, 0) + 1
        return counts

    def metric_histories(self, run_ids: list[str], key: str) -> dict[str, list[tuple[int, float]]]:
        """Every ``(step, value)`` of metric ``key`` of these runs, by step, one call a run."""
        histories: dict[str, list[tuple[int, float]]] = {}
        for run_id in dict.fromkeys(run_ids):
            points = sorted(
                self._client.get_metric_history(run_id, key), key=lambda p: (p.step, p.timestamp)
            )
            if points:
                histories[run_id] = [(int(p.step), float(p.value)) for p in points]
        return histories

"""What each dashboard route needs, in one table, and the dependency that checks it.

Every route of the dashboard has a rule here; a route without one is refused to everyone
but admins (a new route cannot be forgotten open), and tests/security/test_routes.py checks
each rule against a real server with two users. Rules name the resource the route is about
(an experiment, a run's experiment, a model, a job) and the permission it needs, as MLflow
names them: ``read``, ``update`` (EDIT) or ``manage`` (MANAGE). Routes whose resource is in
their body (train, register) check it in the handler with :func:`access_of`; lists filter
themselves to what the user may read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request

from flowscope.auth.access import EXPERIMENT, REGISTERED_MODEL, Access, Forbidden, Need
from flowscope.errors import NotFoundError
from flowscope.modeling.uploads import may_use_dataset

Resource = Literal["signed_in", "experiment", "run", "model", "job", "runs_query"]


@dataclass(frozen=True)
class Rule:
    """``resource`` named by path parameter ``param`` needs ``need``; ``signed_in`` needs a
    user only (and a token that may write when ``need`` is not ``read``)."""

    resource: Resource
    need: Need = "read"
    param: str = ""


SIGNED_IN = Rule("signed_in")
WRITER = Rule("signed_in", "update")

RULES: dict[str, Rule] = {
    "GET /api/openapi": SIGNED_IN,
    "GET /vendor/plotly.min.js": SIGNED_IN,
    "GET /": SIGNED_IN,
    "GET /api/experiments/{experiment_id}/runs": Rule("experiment", param="experiment_id"),
    "GET /api/experiments/{experiment_id}/summary": Rule("experiment", param="experiment_id"),
    "GET /api/experiments/{experiment_id}/best": Rule("experiment", param="experiment_id"),
    "GET /experiments": SIGNED_IN,  # lists only the readable ones
    "GET /experiments/{experiment_id}": Rule("experiment", param="experiment_id"),
    "GET /experiments/{experiment_id}/runs.csv": Rule("experiment", param="experiment_id"),
    "GET /experiments/{experiment_id}/best": Rule("experiment", param="experiment_id"),
    "GET /experiments/{experiment_id}/report": Rule("experiment", param="experiment_id"),
    "GET /experiments/{experiment_id}/report.{extension}": Rule(
        "experiment", param="experiment_id"
    ),
    "GET /runs/{run_id}": Rule("run", param="run_id"),
    "GET /runs/{run_id}/artifacts/{path:path}": Rule("run", param="run_id"),
    "GET /studies/{run_id}": Rule("run", param="run_id"),
    "GET /compare": Rule("runs_query"),
    "GET /models": SIGNED_IN,  # lists only the readable ones
    "GET /models/{name}": Rule("model", param="name"),
    "GET /models/{name}/compare": Rule("model", param="name"),
    "GET /models/{name}/history": Rule("model", param="name"),
    "POST /models/{name}/preview": Rule("model", param="name"),  # a dry run: reads
    "POST /models/{name}/promote": Rule("model", "manage", "name"),
    "POST /api/models/{name}/{ref}/predict": Rule("model", param="name"),
    "POST /api/models/{name}/{ref}/predict/batch": Rule("model", param="name"),
    "GET /models/{name}/predict": Rule("model", param="name"),
    "POST /models/{name}/predict": Rule("model", param="name"),
    "POST /models/{name}/predict/batch": Rule("model", param="name"),
    "GET /models/{name}/predict/download/{download_id}": Rule("model", param="name"),
    "GET /models/{name}/inference": Rule("model", param="name"),
    "GET /workbench": SIGNED_IN,
    "GET /api/datasets": SIGNED_IN,
    "GET /api/datasets/{dataset_id}": SIGNED_IN,
    "POST /api/datasets": WRITER,
    "POST /workbench/upload": WRITER,
    "POST /api/jobs": WRITER,  # and EDIT on the experiment it trains in: the handler
    "POST /workbench/train": WRITER,  # the same
    "GET /api/jobs": SIGNED_IN,  # lists only the jobs of readable experiments
    "GET /jobs": SIGNED_IN,  # the same
    "GET /api/jobs/{job_id}": Rule("job", param="job_id"),
    "GET /jobs/{job_id}": Rule("job", param="job_id"),
    "POST /api/jobs/{job_id}/cancel": Rule("job", "update", "job_id"),
    "POST /jobs/{job_id}/cancel": Rule("job", "update", "job_id"),
    "POST /jobs/{job_id}/register": Rule("job", "update", "job_id"),  # and the model: handler
    "GET /api/ingest": SIGNED_IN,
    "POST /api/ingest/runs/{run_id}/metrics": Rule("run", "update", "run_id"),
    "GET /api/tokens": SIGNED_IN,
    "POST /api/tokens": SIGNED_IN,  # a read token may not make a write one: the handler
    "POST /api/tokens/{token_id}/revoke": WRITER,  # one's own, or any for an admin
    "GET /tokens": SIGNED_IN,
    "POST /tokens": SIGNED_IN,  # the same as POST /api/tokens
    "GET /login": SIGNED_IN,  # public to the anonymous (the guard); signed in: switch user
    "POST /login": SIGNED_IN,
    "POST /logout": SIGNED_IN,
}


def access_of(request: Request) -> Access:
    """The request's :class:`Access` (everything allowed when auth is off)."""
    access = getattr(request.state, "access", None)
    return access if access is not None else Access(None, None, "READ")


def authorize(request: Request) -> None:
    """The dashboard's one dependency: the route's rule, checked. Without auth, nothing."""
    access = access_of(request)
    if access.identity is None:
        return
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    method = "GET" if request.method == "HEAD" else request.method
    rule = RULES.get(f"{method} {path}")
    if rule is None:
        if access.identity.is_admin:
            return
        raise Forbidden("this route has no permission rule: only an admin may use it")
    key = str(request.path_params.get(rule.param, ""))
    if rule.resource == "signed_in":
        if rule.need != "read":
            access.require_writer()
    elif rule.resource == "experiment":
        access.require(EXPERIMENT, key, rule.need, f"experiment {key}")
    elif rule.resource == "model":
        access.require(REGISTERED_MODEL, key, rule.need, f"model {key!r}")
    elif rule.resource == "run":
        require_run(request, access, key, rule.need)
    elif rule.resource == "runs_query":
        from flowscope.analysis.compare_view import parse_run_ids

        for run_id in parse_run_ids(",".join(request.query_params.getlist("runs")))[:50]:
            require_run(request, access, run_id, "read")
    elif rule.resource == "job":
        require_job(request, access, key, rule.need)


def require_run(request: Request, access: Access, run_id: str, need: Need) -> None:
    if access.unrestricted and (need == "read" or access.identity is None):
        return
    experiment_id = run_experiment(request, run_id)
    access.require(EXPERIMENT, experiment_id, need, f"the experiment of run {run_id}")


def run_experiment(request: Request, run_id: str) -> str:
    """The experiment of ``run_id``; :class:`NotFoundError` if there is no such run."""
    known: RunExperiments = request.app.state.run_experiments
    return known.of(request.app.state.store, run_id)


class RunExperiments:
    """The experiment of each run this process has checked. A run never moves to another
    experiment in MLflow, so the ingest rule, checked on every batch an SDK sends, reads a
    run's whole row from the store once, not once a batch. Bounded: past ``size`` runs it
    starts afresh. A dict read or written whole is safe across threads in CPython; two
    threads missing at once both ask the store, and agree."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._known: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._known)

    def of(self, store: Any, run_id: str) -> str:
        """The experiment of ``run_id`` in ``store`` (a :class:`RunStore`)."""
        experiment_id = self._known.get(run_id)
        if experiment_id is None:
            rows = store.runs([run_id])
            if not rows:
                raise NotFoundError(f"no run {run_id!r}")
            experiment_id = str(rows[0]["experiment_id"])
            if len(self._known) >= self._size:
                self._known.clear()
            self._known[run_id] = experiment_id
        return experiment_id


def require_job(request: Request, access: Access, job_id: str, need: Need) -> None:
    """A job is its submitter's, and readable (``need``: changeable) by whoever may read
    (change) the experiment it trains in."""
    from flowscope.web.app_queue import job_queue

    if access.identity is None:
        return
    if need != "read":
        access.require_writer()
    job = job_queue(request).get(job_id)
    if access.identity.is_admin or job.user == access.identity.username:
        return
    experiment_id = experiment_of_task(request, str(job.request.get("task") or ""))
    if experiment_id is None:
        raise Forbidden(f"job {job_id} is another user's")
    access.require(EXPERIMENT, experiment_id, need, f"the experiment of job {job_id}")


def experiment_of_task(request: Request, task: str) -> str | None:
    """The id of the experiment a training job of ``task`` logs into, if it exists yet."""
    from mlflow.exceptions import MlflowException

    from flowscope.mlflow_client import client_for

    settings = request.app.state.settings
    try:
        experiment = client_for(settings).get_experiment_by_name(settings.experiment_name(task))
    except MlflowException:
        return None
    return None if experiment is None else str(experiment.experiment_id)


def authorize_training(request: Request, task: str, register: str | None) -> None:
    """A training job's permissions: EDIT on the experiment it logs to (a new one is made
    now, with MANAGE for its creator, as MLflow gives the creator of an experiment) and,
    when it registers its model, EDIT on that model (MANAGE on a new name)."""
    access = access_of(request)
    if access.identity is None:
        return
    access.require_writer()
    from flowscope.tracking.store import StoreAccess

    settings = request.app.state.settings
    name = settings.experiment_name(task)
    existing = experiment_of_task(request, task)
    if existing is None:
        access.grant_manage(EXPERIMENT, StoreAccess(settings).experiment_id(name))
    else:
        access.require(EXPERIMENT, existing, "update", f"experiment {name!r}")
    if register:
        authorize_registering(request, register)


def authorize_registering(request: Request, name: str) -> None:
    """EDIT on registered model ``name``, or MANAGE granted now when there is none yet."""
    access = access_of(request)
    if access.identity is None:
        return
    from mlflow.exceptions import MlflowException

    from flowscope.mlflow_client import client_for

    try:
        client_for(request.app.state.settings).get_registered_model(name)
    except MlflowException:
        access.grant_manage(REGISTERED_MODEL, name)
        return
    access.require(REGISTERED_MODEL, name, "update", f"model {name!r}")


def visible_job(request: Request, access: Access) -> Callable[[Any], bool]:
    """Whether the user may see a job: theirs, or READ on the experiment it logs to."""
    experiments: dict[str, str | None] = {}

    def visible(job: Any) -> bool:
        if access.unrestricted or (access.identity and job.user == access.identity.username):
            return True
        task = str(job.request.get("task") or "")
        if task not in experiments:
            experiments[task] = experiment_of_task(request, task)
        experiment_id = experiments[task]
        return experiment_id is not None and access.allows(EXPERIMENT, experiment_id, "read")

    return visible


def dataset_user(request: Request) -> str | None:
    """Whose data sets the request may use: ``None`` for everyone's (no sign-in, or an
    admin), else the signed-in user's own (:func:`~flowscope.modeling.uploads.may_use_dataset`)."""
    access = access_of(request)
    return None if access.unrestricted or access.identity is None else access.identity.username


def check_dataset(request: Request, dataset_id: str) -> None:
    """A data set the user may not use is answered as one that does not exist."""
    if not may_use_dataset(request.app.state.settings, dataset_id, dataset_user(request)):
        raise NotFoundError(f"no data set {dataset_id!r} of yours")

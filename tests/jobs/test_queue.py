"""Jobs in one process: what is submitted is checked whole, runs once on the embedded
consumer, and is linked both ways to the MLflow runs it made."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.errors import NotFoundError
from flowscope.jobs import JobQueue
from flowscope.jobs.work import JOB_TAG
from flowscope.web import create_app
from tests.jobs.conftest import job_settings, submit
from tests.leaks import assert_no_leak

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return job_settings(tmp_path)


def test_jobs_train_once_and_link_both_ways(settings: Settings) -> None:
    with TestClient(create_app(settings, run_jobs=True)) as http:
        answer = http.post(
            "/api/jobs",
            json={
                "dataset_id": "builtin:iris",
                "target": "species",
                "model_types": ["logistic_regression", "random_forest"],
                "task": "iris-jobs",
                "test_size": 0.25,
                "seed": 3,
                "register": "iris-best",
            },
        )
        assert answer.status_code == 201, answer.text
        ids = answer.json()["job_ids"]
        assert len(ids) == 2
        jobs = [http.get(f"/api/jobs/{job_id}", params={"wait": 60}).json() for job_id in ids]
        listed = http.get("/jobs.json").json()
        settled = http.get(f"/api/jobs/{ids[0]}").json()  # every job of the batch has ended
        page = http.get(f"/jobs/{ids[0]}")
    client = MlflowClient(settings.tracking_uri)
    accuracies = {}
    for job_id, job in zip(ids, jobs, strict=True):
        assert job["state"] == "succeeded", job
        assert job["progress"] == 1.0 and job["error"] is None
        [run_id] = job["run_ids"]
        run = client.get_run(run_id)
        assert run.data.tags[JOB_TAG] == job_id  # the run names its job
        assert run.info.status == "FINISHED"
        assert run.data.params["test_size"] == "0.25"
        assert job["job"]["metrics"]["accuracy"] == run.data.metrics["accuracy"]
        accuracies[run_id] = run.data.metrics["accuracy"]
        [version] = client.search_model_versions(f"run_id = '{run_id}'")
        assert version.name == "iris-best"
    best = max(accuracies, key=lambda r: (accuracies[r], -ids.index(_job_of(jobs, r))))
    assert settled["best"]["run_id"] == best
    assert listed["counts"]["succeeded"] == 2 and not listed["live"]
    assert page.status_code == 200 and f'href="/runs/{best}"' in page.text


def _job_of(jobs: list[dict[str, Any]], run_id: str) -> str:
    return next(job["job"]["job_id"] for job in jobs if run_id in job["run_ids"])


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"dataset_id": "nope"}, 404, "no data set 'nope'"),
        ({"dataset_id": "../etc/passwd"}, 404, "no data set"),
        ({"target": "colour"}, 400, "colour"),
        ({"model_types": ["deep_magic"]}, 400, "unknown model type 'deep_magic'"),
        ({"model_types": []}, 400, "at least one model type"),
        ({"params": {"C": "very"}}, 400, "'C'"),
        ({"params": {"n_wheels": "3"}}, 400, "unknown parameter 'n_wheels'"),
        ({"test_size": 1.5}, 400, "test_size"),
        ({"task": "<script>"}, 400, "task"),
    ],
)
def test_a_bad_request_is_refused_whole_and_queues_nothing(
    settings: Settings, fields: dict[str, Any], status: int, message: str
) -> None:
    body = {
        "dataset_id": "builtin:iris",
        "target": "species",
        "model_types": ["logistic_regression", "random_forest"],
    }
    body.update(fields)
    with TestClient(create_app(settings)) as http:
        answer = http.post("/api/jobs", json=body)
        assert answer.status_code == status, answer.text
        assert message in answer.json()["error"]
        assert http.get("/api/jobs").json()["jobs"] == []
    assert JobQueue(settings).pending() == 0


def test_malformed_bodies_get_a_400(settings: Settings) -> None:
    with TestClient(create_app(settings)) as http:
        json_type = {"content-type": "application/json"}
        assert http.post("/api/jobs", content=b"{not json", headers=json_type).status_code == 400
        assert http.post("/api/jobs", content=b"<job/>").status_code == 415
        answer = http.post("/api/jobs", json={"dataset_id": "builtin:iris"})
        assert answer.status_code == 400 and "missing field 'target'" in answer.json()["error"]
        answer = http.post("/api/jobs", json=["a"])
        assert answer.status_code == 400
        answer = http.post(
            "/api/jobs",
            json={
                "dataset_id": "builtin:iris",
                "target": "species",
                "model_types": ["knn"],
                "seed": "x",
            },
        )
        assert answer.status_code == 400 and "seed" in answer.json()["error"]
        assert http.get("/api/jobs/0123abcd").status_code == 404
        assert http.get("/jobs/not-a-job!").status_code == 404


IRIS_JOB = {
    "dataset_id": "builtin:iris",
    "target": "species",
    "model_types": ["logistic_regression"],
}


def test_a_submission_to_a_redis_nobody_listens_on_is_a_503_naming_it(tmp_path: Path) -> None:
    """The job documents live in the queue's own storage: with that Redis away nothing can
    be written, and the answer says where the queue is and when to try again."""
    from tests.servers import free_port

    port = free_port()
    settings = job_settings(tmp_path, jobs_url=f"redis://127.0.0.1:{port}/0")
    with TestClient(create_app(settings)) as http:
        answer = http.post("/api/jobs", json=IRIS_JOB)
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"]
    assert answer.json()["error"] == "the job queue is unreachable"
    assert_no_leak(answer.text, f"127.0.0.1:{port}", tmp_path)


def test_a_job_written_but_not_enqueued_ends_failed_instead_of_queued_forever(
    settings: Settings,
) -> None:
    import sqlite3

    queue = JobQueue(settings)  # creates the queue's tables
    # the queue's own table refuses the task while its key-value table still takes writes
    with sqlite3.connect(settings.workbench_dir / "jobs.db") as db:
        db.execute(
            "CREATE TRIGGER refuse_tasks BEFORE INSERT ON task "
            "BEGIN SELECT RAISE(ABORT, 'the queue is away'); END"
        )
    with TestClient(create_app(settings)) as http:
        answer = http.post("/api/jobs", json=IRIS_JOB)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"]
        assert answer.json()["error"] == "the job queue is unreachable"
        assert_no_leak(answer.text, queue.location, settings.workbench_dir)
        listed = http.get("/api/jobs")
        [job] = listed.json()["jobs"]
        assert_no_leak(listed.text, queue.location, settings.workbench_dir)
        assert_no_leak(http.get("/jobs").text, queue.location, settings.workbench_dir)
    assert job["state"] == "failed"
    assert job["error"] == "could not be queued: the job queue is unreachable"
    assert queue.pending() == 0


def test_the_embedded_consumer_outlives_an_error_of_huey_around_a_job(
    settings: Settings,
) -> None:
    queue = JobQueue(settings)
    [broken] = submit(settings, queue)
    [after] = submit(settings, queue)
    # what huey reads before running the first task cannot be read: huey raises there,
    # outside the job, on the consumer's own thread
    first = queue.huey.pending()[0]
    queue.huey.storage.put_data(first.revoke_id, b"not a pickle")
    consumer = queue.start_embedded()
    try:
        done = queue.wait(after, 120)
        assert consumer.is_alive()
    finally:
        queue.stop_embedded()
    assert done.state == "succeeded", done
    assert queue.get(broken).state == "queued"  # huey dropped its task; nothing ran it


def test_a_job_that_cannot_fit_ends_failed_with_its_run_failed(settings: Settings) -> None:
    queue = JobQueue(settings)
    # more neighbours than training rows: the estimator is valid, fitting it is not
    [job_id] = submit(settings, queue, model_types=["knn"], params={"n_neighbors": "500"})
    queue.start_embedded()
    try:
        job = queue.wait(job_id, 120)
    finally:
        queue.stop_embedded()
    assert job.state == "failed"
    assert job.error and "knn could not be trained on this data: " in job.error
    assert "n_neighbors" in job.error
    assert_no_leak(job.error, settings.workbench_dir.parent)
    [run_id] = job.run_ids
    run = MlflowClient(settings.tracking_uri).get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags[JOB_TAG] == job_id


def test_a_job_whose_run_could_not_be_delivered_ends_failed_saying_so(tmp_path: Path) -> None:
    """The artifact store cannot take the model (its folder would be inside a file): the
    model never reaches the store, so the job is not a success and registers nothing."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the artifact folder would be")
    settings = job_settings(
        tmp_path, artifact_root=(blocker / "artifacts").as_uri(), flush_timeout=3.0
    )
    queue = JobQueue(settings)
    [job_id] = submit(settings, queue, register="never")
    queue.start_embedded()
    try:
        job = queue.wait(job_id, 300)
    finally:
        queue.stop_embedded()
    assert job.state == "failed", job
    assert job.error and "not all of it reached the tracking store" in job.error
    assert "the model was not registered" in job.error
    [run_id] = job.run_ids
    assert run_id in job.error
    assert MlflowClient(settings.tracking_uri).search_registered_models() == []


def test_a_cancelled_job_never_runs_and_a_started_one_cannot_be_cancelled(
    settings: Settings,
) -> None:
    queue = JobQueue(settings)
    [cancelled] = submit(settings, queue)
    [after] = submit(settings, queue)
    with TestClient(create_app(settings)) as http:
        answer = http.post(f"/api/jobs/{cancelled}/cancel")
        assert answer.status_code == 200 and answer.json()["state"] == "cancelled"
        answer = http.post(f"/jobs/{cancelled}/register", data={"name": "nothing"})
        assert answer.status_code == 409 and "no run to register" in answer.text
    assert queue.get(cancelled).state == "cancelled"
    queue.start_embedded()
    try:
        done = queue.wait(after, 120)  # the queue is FIFO: the cancelled job came first
    finally:
        queue.stop_embedded()
    assert done.state == "succeeded"
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name("iris-jobs")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [run.data.tags[JOB_TAG] for run in runs] == [after]
    assert queue.get(cancelled).state == "cancelled"
    assert not queue.cancel(after, "tester")  # it ran: too late to cancel
    with pytest.raises(NotFoundError):
        queue.cancel("0000", "tester")


def test_a_job_whose_worker_on_another_machine_went_silent_ends_failed(
    settings: Settings,
) -> None:
    import json

    from flowscope.jobs.state import STALE_AFTER, JobStore

    queue = JobQueue(settings)
    [job_id] = submit(settings, queue)
    now = 1_000_000.0
    store = JobStore(queue.huey.storage, clock=lambda: now)
    # as a worker on another machine writes them: its claim, then its last heartbeat
    claim = {"action": "start", "worker": "elsewhere.example:4242", "at": now}
    queue.huey.storage.put_if_empty(f"fs.job:{job_id}:claim", json.dumps(claim).encode())
    store.progress(job_id, 0.2, "training")
    now += STALE_AFTER  # silent for exactly that long: still alive
    assert store.get(job_id).state == "running"
    now += 1
    job = store.get(job_id)
    assert job.state == "failed"
    assert job.error and "elsewhere.example:4242" in job.error
    assert f"no heartbeat for {STALE_AFTER + 1:.0f} s" in job.error
    now += 3600
    assert store.get(job_id).state == "failed"  # ended once, for everyone
    assert queue.get(job_id).error == job.error


def test_the_train_form_queues_a_job_per_model_and_each_run_names_the_uploaded_file(
    settings: Settings, tmp_path: Path
) -> None:
    import hashlib

    from tests.web.datasets import customers

    data = tmp_path / "customers.csv"
    customers(120).to_csv(data, index=False)
    with TestClient(create_app(settings, run_jobs=True)) as http:
        with data.open("rb") as handle:
            uploaded = http.post("/api/datasets", files={"file": ("customers.csv", handle)})
        assert uploaded.status_code == 201, uploaded.text
        dataset_id = uploaded.json()["dataset_id"]
        form = {
            "dataset_id": dataset_id,
            "target": "churned",
            "model_types": ["logistic_regression", "random_forest"],
            "params": "",
            "task": "customers",
            "test_size": "0.25",
            "seed": "1",
            "tune_trials": "0",
            "register": "",
        }
        answer = http.post("/workbench/train", data=form, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        batch = answer.headers["location"].split("batch=")[1]
        listed = http.get("/api/jobs", params={"batch": batch}).json()["jobs"]
        assert sorted(job["model_type"] for job in listed) == [
            "logistic_regression",
            "random_forest",
        ]
        jobs = [http.get(f"/api/jobs/{j['job_id']}", params={"wait": 60}).json() for j in listed]
        bad = http.post("/workbench/train", data={**form, "target": "region"})
        assert bad.status_code == 400 and "region" in bad.text  # a constant target
    client = MlflowClient(settings.tracking_uri)
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    for job in jobs:
        assert job["state"] == "succeeded", job
        [run_id] = job["run_ids"]
        run = client.get_run(run_id)
        assert run.data.tags["flowscope.dataset"] == dataset_id
        assert dataset_id == digest[:16]
        kept = {item.path for item in client.list_artifacts(run_id, "dataset")}
        assert "dataset/customers.csv" in kept
        [used] = run.inputs.dataset_inputs
        assert used.dataset.source and "customers.csv" in used.dataset.source
        assert used.dataset.digest
    assert len(JobQueue(settings).all()) == 2  # the refused form queued nothing


def test_a_tune_job_runs_a_study_of_its_budget_and_refits_the_best(settings: Settings) -> None:
    import optuna

    queue = JobQueue(settings)
    [job_id] = submit(
        settings, queue, model_types=["logistic_regression"], tune_trials=4, register="iris-tuned"
    )
    queue.start_embedded()
    try:
        job = queue.wait(job_id, 300)
    finally:
        queue.stop_embedded()
    assert job.kind == "tune" and job.state == "succeeded", job.error
    parent_id, refit_id = job.run_ids
    client = MlflowClient(settings.tracking_uri)
    parent, refit = client.get_run(parent_id), client.get_run(refit_id)
    assert parent.data.tags["flowscope.kind"] == "tuning"
    assert parent.data.tags[JOB_TAG] == job_id and refit.data.tags[JOB_TAG] == job_id
    trials = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    trial_runs = [run for run in trials if run.data.tags.get("flowscope.kind") == "trial"]
    assert len(trial_runs) == 4  # the budget, exactly
    from flowscope.tuning.storage import default_storage_url

    study = optuna.load_study(
        study_name=parent.data.tags["flowscope.study"], storage=default_storage_url(settings)
    )
    assert len(study.trials) == 4
    assert job.best_run_id == refit_id and job.metrics["accuracy"] == refit.data.metrics["accuracy"]
    assert job.registered == {"name": "iris-tuned", "version": 1}

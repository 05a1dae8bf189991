"""Jobs on real consumer processes, on SQLite and on Redis: every job runs exactly once
whoever submits it, a worker killed mid-job leaves the job failed (never "running"), and
jobs queued before the dashboard restarts still run after it."""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Callable

import httpx
import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.jobs import JobQueue
from flowscope.jobs.work import JOB_TAG
from tests.jobs.conftest import JobHold, Worker, submit
from tests.servers import FlowscopeServer

pytestmark = pytest.mark.slow


def runs_by_job(settings: Settings) -> dict[str, list[str]]:
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name("iris-jobs")
    if experiment is None:
        return {}
    found: dict[str, list[str]] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        found.setdefault(run.data.tags[JOB_TAG], []).append(run.info.run_id)
    return found


def kill_and_wait(pid: int) -> None:
    """SIGKILL a process that is not our child and return once it has died (its pidfd
    turns readable then)."""
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        readable, _, _ = select.select([pidfd], [], [], 60)
        assert readable, f"process {pid} outlived SIGKILL"
    finally:
        os.close(pidfd)


def test_twenty_jobs_from_four_submitters_each_run_once(
    backend: str, settings_for: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_for(backend)
    workers.append(Worker(settings, processes=2))
    submitted: list[str] = []
    lock = threading.Lock()

    def submitter(seed: int) -> None:
        queue = JobQueue(settings)  # each submitter its own connection to the queue
        for n in range(5):
            ids = submit(settings, queue, seed=seed * 10 + n, model_types=["logistic_regression"])
            with lock:
                submitted.extend(ids)

    threads = [threading.Thread(target=submitter, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(submitted)) == 20
    queue = JobQueue(settings)
    ended = [queue.wait(job_id, 300) for job_id in submitted]
    assert [job.state for job in ended] == ["succeeded"] * 20, [j.error for j in ended]
    runs = runs_by_job(settings)
    assert sorted(runs) == sorted(submitted)  # every job made its run, and only once
    for job in ended:
        assert runs[job.job_id] == job.run_ids
    assert {job.worker for job in ended} <= {job.worker for job in ended if job.worker}
    assert queue.pending() == 0


@pytest.mark.parametrize("processes", [1, 2])
def test_a_worker_killed_mid_job_leaves_it_failed_and_the_rest_run(
    backend: str,
    processes: int,
    settings_for: Callable[..., Settings],
    workers: list[Worker],
    job_hold: JobHold,
) -> None:
    settings = settings_for(backend)
    queue = JobQueue(settings)
    [first] = submit(settings, queue, seed=1)
    [second] = submit(settings, queue, seed=2)
    worker = Worker(settings, processes=processes, **job_hold.env)
    workers.append(worker)
    run_id = job_hold.wait_started(first, worker.process, worker.log)
    held = queue.get(first)
    assert held.state == "running" and held.worker is not None
    if processes == 1:
        worker.kill()  # the whole worker, as a crash or an OOM kill would
    else:  # the one process running the job; huey's consumer starts another
        kill_and_wait(int(held.worker.rpartition(":")[2]))
    failed = queue.get(first)
    assert failed.state == "failed"
    assert failed.error and "stopped before it finished" in failed.error
    client = MlflowClient(settings.tracking_uri)
    assert client.get_run(run_id).info.status == "KILLED"
    job_hold.release()  # the second job goes on where it held (two processes)
    if processes == 1:
        workers.append(Worker(settings, processes=1))
    assert queue.wait(second, 300).state == "succeeded"
    assert queue.get(first).state == "failed"
    runs = runs_by_job(settings)
    assert runs[first] == [run_id]  # the killed job never ran again
    assert len(runs[second]) == 1


def test_jobs_queued_before_the_dashboard_restarts_still_run(
    settings_for: Callable[..., Settings], job_hold: JobHold
) -> None:
    settings = settings_for("sqlite")
    shared = {
        "workbench_dir": str(settings.workbench_dir),
        "artifacts_dir": str(settings.artifacts_dir),
        "autolog": "false",
        "sync_on_start": "false",
    }

    def dashboard(env: dict[str, str]) -> FlowscopeServer:
        return FlowscopeServer(
            settings.workbench_dir.parent / "ui",
            settings.tracking_uri,
            ["ui"],
            health_path="/jobs.json",
            settings=shared,
            name="dashboard",
            env=env,
        )

    first_ui = dashboard(job_hold.env)
    first_ui.start()
    try:
        body = {
            "dataset_id": "builtin:iris",
            "target": "species",
            "model_types": ["logistic_regression", "knn", "random_forest"],
            "task": "iris-jobs",
        }
        answer = httpx.post(f"{first_ui.url}/api/jobs", json=body, timeout=60)
        assert answer.status_code == 201, answer.text
        held, *queued = answer.json()["job_ids"]
        assert first_ui.process is not None
        job_hold.wait_started(held, first_ui.process, first_ui.root / "dashboard.log")
    finally:
        first_ui.stop()  # SIGKILL: the dashboard and the job it was running die together
    second_ui = dashboard({})
    second_ui.start()
    try:
        for job_id in queued:
            job = httpx.get(f"{second_ui.url}/api/jobs/{job_id}", params={"wait": 60}, timeout=90)
            assert job.json()["state"] == "succeeded", job.text
        lost = httpx.get(f"{second_ui.url}/api/jobs/{held}", timeout=60).json()
        assert lost["state"] == "failed" and "stopped" in lost["error"]
    finally:
        second_ui.stop()
    runs = runs_by_job(settings)
    assert sorted(runs) == sorted([held, *queued])
    assert all(len(made) == 1 for made in runs.values())

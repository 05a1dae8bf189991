"""The workbench, measured: how long queueing a job takes, how much two warm workers save
over separate ``flowscope train`` commands, and the time from uploading a CSV to its first
prediction, all through real processes on a fresh store in a temporary folder.

Run from the repository root (either form)::

    .venv/bin/python bench/workbench.py
    .venv/bin/python -m bench.workbench --submissions 100 --jobs 10 --rows 5000

1. Queueing: ``--submissions`` ``POST /api/jobs`` to a ``flowscope ui`` that runs no jobs
   itself (``jobs_embedded=false``), one at a time over one HTTP connection; p50 and p95 of
   the answer's latency (the request checked whole: data set, target, model type, params).
2. Throughput: ``--jobs`` training jobs (logistic regression on the built-in breast cancer
   data, SHAP on) through ``flowscope worker --processes 2``, warmed by one job first, from
   the first submission until the last job has ended; against the same trainings as
   ``--jobs`` separate ``flowscope train`` commands, two at a time (the same parallelism),
   each paying its process start and imports. The ratio is commands' time over jobs' time.
3. Upload to prediction: a ``--rows``-row CSV (numeric and text columns, some missing)
   through the JSON API alone: ``POST /api/datasets``, ``POST /api/jobs`` registering the
   model, ``GET /api/jobs/ID?wait=``, ``POST /api/models/NAME/1/predict``.
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from tests.servers import FlowscopeServer

TASK = "bench-workbench"
JOB = {
    "dataset_id": "builtin:breast_cancer",
    "target": "target",
    "model_types": ["logistic_regression"],
    "task": TASK,
}


def _env(root: Path, tracking_uri: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSCOPE_", "MLFLOW_"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": tracking_uri,
            "FLOWSCOPE_ARTIFACTS_DIR": str(root / "mlartifacts"),
            "FLOWSCOPE_JOURNAL_DIR": str(root / "journal"),
            "FLOWSCOPE_WORKBENCH_DIR": str(root / "workbench"),
            "FLOWSCOPE_SYNC_ON_START": "false",
        }
    )
    env.update({f"FLOWSCOPE_{key.upper()}": value for key, value in settings.items()})
    return env


def _dashboard(root: Path, tracking_uri: str, **settings: str) -> FlowscopeServer:
    values = {
        "artifacts_dir": str(root / "mlartifacts"),
        "workbench_dir": str(root / "workbench"),
        "sync_on_start": "false",
        **settings,
    }
    return FlowscopeServer(
        root / "ui", tracking_uri, ["ui"], health_path="/jobs.json", settings=values
    )


def _target_of_builtin() -> str:
    from flowscope.modeling.data import load_builtin

    return load_builtin("breast_cancer")[1]


def queueing(root: Path, submissions: int) -> dict[str, float]:
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    ui = _dashboard(root, tracking_uri, jobs_embedded="false")
    ui.start()
    try:
        latencies = []
        with httpx.Client(base_url=ui.url, timeout=60) as http:
            http.post("/api/jobs", json=JOB).raise_for_status()  # warm: imports, caches
            for _ in range(submissions):
                started = time.perf_counter()
                answer = http.post("/api/jobs", json=JOB)
                latencies.append(time.perf_counter() - started)
                answer.raise_for_status()
    finally:
        ui.stop()
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
    }


def throughput(root: Path, jobs: int) -> dict[str, float]:
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    env = _env(root, tracking_uri)
    ui = _dashboard(root, tracking_uri, jobs_embedded="false")
    ui.start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "flowscope.cli", "worker", "--processes", "2"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=ui.url, timeout=120) as http:
            for _ in range(2):  # warm both worker processes
                [warm] = http.post("/api/jobs", json=JOB).json()["job_ids"]
                http.get(f"/api/jobs/{warm}", params={"wait": 60}).raise_for_status()
            started = time.perf_counter()
            ids = [
                http.post("/api/jobs", json={**JOB, "seed": n}).json()["job_ids"][0]
                for n in range(jobs)
            ]
            states = []
            for job_id in ids:
                while (job := http.get(f"/api/jobs/{job_id}", params={"wait": 60}).json())[
                    "state"
                ] in ("queued", "running"):
                    pass
                states.append(job["state"])
            warm_seconds = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        ui.stop()
    assert states == ["succeeded"] * jobs, states

    def command(seed: int) -> int:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "flowscope.cli",
                "train",
                "--dataset",
                "breast_cancer",
                "--model",
                "logistic_regression",
                "--task",
                TASK + "-cli",
                "--seed",
                str(seed),
            ],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = list(pool.map(command, range(jobs)))
    cold_seconds = time.perf_counter() - started
    assert codes == [0] * jobs, codes
    return {
        "jobs_s": warm_seconds,
        "commands_s": cold_seconds,
        "ratio": cold_seconds / warm_seconds,
    }


def upload_to_prediction(root: Path, rows: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(50, 12, rows).round(1),
            "income": rng.lognormal(10, 0.5, rows).round(0),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "region": rng.choice(["north", "south", "east", "west", None], rows),
        }
    )
    score = (frame["age"] - 50) / 12 + (frame["plan"] == "pro") * 1.5 + rng.normal(0, 1, rows)
    frame["churned"] = np.where(score > 0.5, "yes", "no")
    root.mkdir(parents=True, exist_ok=True)
    data = root / "customers.csv"
    frame.to_csv(data, index=False)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    ui = _dashboard(root, tracking_uri)  # jobs run in the dashboard's own consumer
    ui.start()
    try:
        with httpx.Client(base_url=ui.url, timeout=120) as http:
            started = time.perf_counter()
            with data.open("rb") as handle:
                uploaded = http.post(
                    "/api/datasets", files={"file": ("customers.csv", handle, "text/csv")}
                )
            uploaded.raise_for_status()
            dataset_id = uploaded.json()["dataset_id"]
            after_upload = time.perf_counter()
            body = {
                "dataset_id": dataset_id,
                "target": "churned",
                "model_types": ["lightgbm"],
                "task": "customers",
                "register": "customers",
            }
            [job_id] = http.post("/api/jobs", json=body).json()["job_ids"]
            job = http.get(f"/api/jobs/{job_id}", params={"wait": 60}).json()
            while job["state"] in ("queued", "running"):
                job = http.get(f"/api/jobs/{job_id}", params={"wait": 60}).json()
            assert job["state"] == "succeeded", job
            trained = time.perf_counter()
            record = {"age": 61.0, "income": 30000.0, "plan": "pro", "region": "north"}
            answer = http.post("/api/models/customers/1/predict", json=record)
            answer.raise_for_status()
            done = time.perf_counter()
    finally:
        ui.stop()
    return {
        "total_s": done - started,
        "upload_s": after_upload - started,
        "train_s": trained - after_upload,
        "predict_s": done - trained,
        "answer": answer.json(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args(argv)
    JOB["target"] = _target_of_builtin()
    with tempfile.TemporaryDirectory(prefix="flowscope-bench-") as folder:
        root = Path(folder)
        queued = queueing(root / "queue", args.submissions)
        print(
            f"queue a job (POST /api/jobs, {args.submissions} submissions): "
            f"p50 {queued['p50_ms']:.1f} ms, p95 {queued['p95_ms']:.1f} ms (target p95 <= 100 ms)"
        )
        flow = throughput(root / "throughput", args.jobs)
        print(
            f"{args.jobs} trainings: 2 warm workers {flow['jobs_s']:.1f} s, "
            f"separate `flowscope train` commands 2 at a time {flow['commands_s']:.1f} s: "
            f"{flow['ratio']:.2f}x (target >= 1.5x)"
        )
        first = upload_to_prediction(root / "upload", args.rows)
        print(
            f"upload {args.rows:,} rows to first prediction: {first['total_s']:.1f} s "
            f"(upload {first['upload_s']:.2f} s, queue and train {first['train_s']:.1f} s, "
            f"predict {first['predict_s']:.2f} s)"
        )


if __name__ == "__main__":
    main()

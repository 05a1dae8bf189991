"""The train form and ``POST /api/jobs`` are one request, checked alike: what one refuses
the other refuses with the same words, and neither answers a 500."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from flowscope.web import create_app
from tests.jobs.conftest import job_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

FIELDS = {"dataset_id": "builtin:iris", "target": "species", "task": "iris-jobs"}


@pytest.mark.parametrize(
    ("json_seed", "form_seed", "message"),
    [
        ("1.5", "1.5", "seed must be a whole number, not 1.5"),
        ("Infinity", "inf", "seed must be a finite number, not inf"),
        ("NaN", "nan", "seed must be a finite number, not nan"),
        ("1e999", "1e999", "seed must be a finite number, not inf"),
        ("-1", "-1", "seed must be between 0 and 4294967295, not -1"),
        ("4294967296", "4294967296", "seed must be between 0 and 4294967295, not 4294967296"),
    ],
)
def test_the_form_and_the_json_body_refuse_a_bad_seed_alike(
    tmp_path: Path, json_seed: str, form_seed: str, message: str
) -> None:
    # the body as written, so that JSON's own 1e999, Infinity and NaN reach the server
    body = json.dumps({**FIELDS, "model_types": ["logistic_regression"]})
    body = body[:-1] + f', "seed": {json_seed}}}'
    form = {**FIELDS, "model_types": "logistic_regression", "seed": form_seed}
    with TestClient(create_app(job_settings(tmp_path))) as http:
        from_json = http.post(
            "/api/jobs", content=body, headers={"Content-Type": "application/json"}
        )
        from_form = http.post("/workbench/train", data=form, headers={"Accept": "application/json"})
        assert http.get("/api/jobs").json()["jobs"] == []
    assert (from_json.status_code, from_json.json()["error"]) == (400, message)
    assert (from_form.status_code, from_form.json()["error"]) == (400, message)


def test_a_whole_seed_written_as_a_decimal_is_taken_by_both(tmp_path: Path) -> None:
    form = {**FIELDS, "model_types": "logistic_regression", "seed": "7.0"}
    with TestClient(create_app(job_settings(tmp_path))) as http:
        from_json = http.post("/api/jobs", json={**FIELDS, "model_types": ["knn"], "seed": 7.0})
        from_form = http.post("/workbench/train", data=form, follow_redirects=False)
        jobs = http.get("/api/jobs").json()["jobs"]
    assert from_json.status_code == 201, from_json.text
    assert from_form.status_code == 303, from_form.text
    assert sorted(job["request"]["seed"] for job in jobs) == [7, 7]

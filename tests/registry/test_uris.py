"""The one ``MODEL@ALIAS`` / ``MODEL/VERSION`` parser: what it reads, what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from flowscope.errors import FlowscopeError
from flowscope.registry.uris import ModelRef, run_artifact_path


@pytest.mark.parametrize(
    ("text", "name", "alias", "version"),
    [
        ("churn@champion", "churn", "champion", None),
        ("  churn@champion\n", "churn", "champion", None),
        ("heart-disease@production", "heart-disease", "production", None),
        ("churn@release-2_b", "churn", "release-2_b", None),
        ("churn/3", "churn", None, "3"),
        ("churn model.v2/12", "churn model.v2", None, "12"),
        ("models:/churn@champion", "churn", "champion", None),
        ("models:/churn/3", "churn", None, "3"),
    ],
)
def test_accepted_forms(text: str, name: str, alias: str | None, version: str | None) -> None:
    ref = ModelRef.parse(text)
    assert (ref.name, ref.alias, ref.version) == (name, alias, version)
    assert ModelRef.parse(str(ref)) == ref == ModelRef.parse(ref.uri)


def test_it_writes_back_what_mlflow_loads() -> None:
    assert ModelRef.parse("churn@champion").uri == "models:/churn@champion"
    assert str(ModelRef.parse("models:/churn/3")) == "churn/3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a model version is required"),
        ("   ", "a model version is required"),
        (None, "a model version is required"),
        (3, "a model version is required"),
        ("churn", "'churn' is not MODEL@ALIAS"),
        ("churn@", "is not MODEL@ALIAS"),
        ("churn/", "is not MODEL@ALIAS"),
        ("@champion", "is not MODEL@ALIAS"),
        ("/3", "is not MODEL@ALIAS"),
        ("churn/three", "is not MODEL@ALIAS"),
        ("churn/-1", "is not MODEL@ALIAS"),
        ("team/churn/3", "is not MODEL@ALIAS"),
        ("churn@champ ion", "is not MODEL@ALIAS"),
        ("churn@a@b", "is not MODEL@ALIAS"),
        ("models:/churn", "is not MODEL@ALIAS"),
        ("models:/churn/Production", "MLflow stages such as 'Production' are not followed"),
        ("runs:/0a1b2c/model", "is a run's artifact, not a registered model version"),
    ],
)
def test_refused_forms_say_what_to_write(text: Any, message: str) -> None:
    with pytest.raises(FlowscopeError, match=message) as caught:
        ModelRef.parse(text)
    assert "MODEL@ALIAS (churn@champion) or MODEL/VERSION (churn/3)" in caught.value.message


def test_an_alias_only_reference_refuses_a_version() -> None:
    assert ModelRef.parse("heart@production", versions=False).alias == "production"
    with pytest.raises(FlowscopeError, match=r"'heart/3' is not MODEL@ALIAS \(e\.g\."):
        ModelRef.parse("heart/3", versions=False)


def test_a_versions_model_folder_inside_its_run() -> None:
    root = "file:///store/1/abc/artifacts"
    assert run_artifact_path(f"{root}/model", "abc", root) == "model"
    assert run_artifact_path(f"{root}/nested/model/", "abc", root + "/") == "nested/model"
    assert run_artifact_path("runs:/abc/model", "abc", root) == "model"
    assert run_artifact_path("runs:/other/model", "abc", root) is None
    assert run_artifact_path("s3://elsewhere/model", "abc", root) is None
    assert run_artifact_path(f"{root}-copy/model", "abc", root) is None
    assert run_artifact_path("runs:/abc/model", None, root) is None

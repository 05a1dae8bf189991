"""A trained model answers the raw table it was trained from through plain MLflow
(``mlflow.pyfunc``, ``mlflow models serve``) exactly as flowscope's own prediction does."""

from __future__ import annotations

import io
import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model

from flowscope.config import Settings
from flowscope.modeling.data import read_table
from flowscope.modeling.inputs import RawFrameCaster, input_schema
from flowscope.modeling.train import train
from flowscope.serving.predict import predict_file
from tests.conftest import make_settings
from tests.servers import ServerProcess


def raw_table(path: Path) -> Path:
    """Wine's classes from a few of its measurements, plus integer, text and missing values
    as a CSV export has them: two integer columns (``year``, ``proline``), a float column
    with gaps, a text column with gaps, and a complete text column."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    rng = np.random.default_rng(7)
    rows = len(wine.data)
    frame = pd.DataFrame(
        {
            "year": rng.integers(2007, 2010, rows),
            "proline": wine.data["proline"].round().astype("int64"),
            "alcohol": wine.data["alcohol"],
            "flavanoids": wine.data["flavanoids"].mask(rng.random(rows) < 0.15),
            "island": pd.Series(rng.choice(["Biscoe", "Dream", "Torgersen"], rows)).mask(
                rng.random(rows) < 0.15
            ),
            "sex": rng.choice(["female", "male"], rows),
            "cultivar": np.asarray(wine.target_names)[wine.target],
        }
    )
    frame.to_csv(path, index=False)
    return path


@dataclass
class Trained:
    settings: Settings
    csv: Path
    run_id: str
    expected: list[str]  # flowscope's own predictions of every row of the CSV


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("raw-inputs")
    settings = make_settings(root, f"sqlite:///{root / 'mlflow.db'}", monitor=False)
    csv = raw_table(root / "penguin-like.csv")
    result = train(
        read_table(csv),
        "cultivar",
        "random_forest",
        {"n_estimators": 25},
        task="raw",
        register="raw",
        settings=settings,
        explain=False,
    )
    assert result.run_id is not None and result.registered_version == "1"
    expected = predict_file(settings, "raw/1", csv, None).table["prediction"].tolist()
    return Trained(settings, csv, result.run_id, expected)


def test_the_signature_takes_the_columns_as_the_csv_holds_them(trained: Trained) -> None:
    local = mlflow.artifacts.download_artifacts(
        run_id=trained.run_id, artifact_path="model", tracking_uri=trained.settings.tracking_uri
    )
    inputs = {spec.name: spec for spec in Model.load(local).signature.inputs.inputs}
    assert {name: (spec.type.name, spec.required) for name, spec in inputs.items()} == {
        "year": ("long", True),
        "proline": ("long", True),
        "alcohol": ("double", True),
        "flavanoids": ("double", False),
        "island": ("string", False),
        "sex": ("string", True),
    }


def test_pyfunc_predicts_the_raw_csv_as_flowscope_does(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.settings.tracking_uri)
    raw = pd.read_csv(trained.csv)
    assert raw["year"].dtype == "int64" and raw["island"].isna().any()
    model = mlflow.pyfunc.load_model("models:/raw/1")
    assert list(model.predict(raw)) == trained.expected
    # an optional column left out (MLflow drops it before the model) counts as missing
    without = model.predict(raw.drop(columns=["island"]))
    assert list(without) == list(model.predict(raw.assign(island=None)))


class MlflowModelServer(ServerProcess):
    """``mlflow models serve`` of ``model_uri`` in this environment, waited for on /ping."""

    name = "mlflow-models-serve"
    health_path = "/ping"

    def __init__(self, root: Path, model_uri: str, tracking_uri: str) -> None:
        super().__init__(root)
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("mlflow")),
            *("models", "serve", "-m", self.model_uri, "--env-manager", "local"),
            *("-p", str(self.port), "--host", "127.0.0.1"),
        ]

    def environment(self) -> dict[str, str]:
        # MLflow runs `uvicorn` by name: this environment's scripts first, as if activated
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": self.tracking_uri}


def _invoke(url: str, body: bytes, content_type: str) -> list[str]:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return list(json.loads(answer.read())["predictions"])


@pytest.mark.slow
def test_mlflow_models_serve_answers_the_raw_csv(trained: Trained, tmp_path: Path) -> None:
    server = MlflowModelServer(tmp_path, "models:/raw/1", trained.settings.tracking_uri)
    server.start(timeout=120)
    try:
        raw = pd.read_csv(trained.csv)
        split = {"dataframe_split": json.loads(raw.to_json(orient="split", index=False))}
        assert _invoke(server.url, json.dumps(split).encode(), "application/json") == (
            trained.expected
        )
        assert _invoke(server.url, trained.csv.read_bytes(), "text/csv") == trained.expected
    finally:
        server.stop()


def test_the_caster_gives_every_source_of_a_frame_the_same_columns() -> None:
    training = pd.DataFrame(
        {"n": [1, 2, 3], "x": [0.5, np.nan, 1.5], "s": ["a", None, "b"], "t": ["u", "v", "u"]}
    )
    caster = RawFrameCaster(["n", "x"], ["s", "t"], optional=["x", "s"]).fit(training)
    # integers as floats; None, pd.NA and NaN alike as NaN; left-out optional columns as
    # missing; columns it was not fitted on ignored; the fitted order kept
    given = pd.DataFrame({"t": pd.Series(["u", pd.NA], dtype=object), "extra": [1, 2], "n": [4, 5]})
    cast = caster.transform(given)
    assert list(cast.columns) == ["n", "x", "s", "t"]
    assert cast["n"].dtype == np.float64 and cast["n"].tolist() == [4.0, 5.0]
    assert cast["x"].isna().all() and cast["s"].isna().all()
    assert cast["t"].iloc[0] == "u" and cast["t"].iloc[1] != cast["t"].iloc[1]  # NaN
    assert list(caster.get_feature_names_out()) == ["n", "x", "s", "t"]
    with pytest.raises(ValueError, match="'t'"):
        caster.transform(given.drop(columns=["t"]))


def test_the_input_schema_follows_the_frames_types_and_gaps() -> None:
    frame = pd.read_csv(
        io.StringIO("i,f,g,s,b\n1,0.5,1,a,true\n2,1.5,,,false\n"), dtype={"b": bool}
    )
    schema = {spec.name: (spec.type.name, spec.required) for spec in input_schema(frame).inputs}
    assert schema == {
        "i": ("long", True),
        "f": ("double", True),
        "g": ("double", False),  # an integer column with a gap is read as floats
        "s": ("string", False),
        "b": ("boolean", True),
    }

"""The training pipeline end to end on a real store: what it logs, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import accuracy_score, mean_pinball_loss, mean_squared_error

from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train
from flowscope.tracking.models import load_model


def _experiment_runs(settings: Settings, name: str) -> list:
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(name)
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def _logged_model(settings: Settings, run_id: str, tmp_path: Path):
    client = MlflowClient(settings.tracking_uri)
    return load_model(client.download_artifacts(run_id, "model", str(tmp_path / run_id)))


@pytest.mark.parametrize("model_type", ["random_forest", "xgboost", "lightgbm", "knn"])
def test_multiclass_run_logs_metrics_equal_to_the_models(
    settings: Settings, tmp_path: Path, model_type: str
) -> None:
    frame, target = load_builtin("iris")
    result = train(frame, target, model_type, task="iris", seed=3, settings=settings)
    assert result.delivered and result.problem == "multiclass"
    client = MlflowClient(settings.tracking_uri)
    stored = client.get_run(result.run_id)
    assert stored.data.params["model_type"] == model_type
    assert stored.data.tags["flowscope.kind"] == "training"
    # the logged model, reloaded, reproduces the logged accuracy on the held-out rows
    model = _logged_model(settings, result.run_id, tmp_path)
    predictions = pd.read_parquet(
        client.download_artifacts(result.run_id, "evaluation/predictions.parquet", str(tmp_path))
    )
    assert set(predictions["y_true"]) <= {"setosa", "versicolor", "virginica"}
    assert stored.data.metrics["accuracy"] == pytest.approx(
        accuracy_score(predictions["y_true"], predictions["y_pred"])
    )
    assert "recall_virginica" in stored.data.metrics
    assert stored.data.metrics["training_time_s"] > 0
    names = {item.path for item in client.list_artifacts(result.run_id)}
    assert {"model", "evaluation", "dataset", "runtime"} <= names
    profile = json.loads(
        Path(
            client.download_artifacts(result.run_id, "dataset/profile.json", str(tmp_path))
        ).read_text()
    )
    assert profile["rows"] == 120  # the training split of 150 rows
    sample = frame.drop(columns=[target]).head(10)
    assert set(model.predict(sample)) <= {"setosa", "versicolor", "virginica"}


def test_boosted_binary_run_has_per_round_history_and_thresholds(settings: Settings) -> None:
    frame, target = load_builtin("breast_cancer")
    result = train(
        frame,
        target,
        "xgboost",
        {"n_estimators": "40"},
        task="cancer",
        thresholds=[0.5, 0.43, 0.35],
        register="cancer-model",
        settings=settings,
    )
    client = MlflowClient(settings.tracking_uri)
    history = client.get_metric_history(result.run_id, "val_accuracy")
    assert sorted(point.step for point in history) == list(range(1, 41))
    metrics = client.get_run(result.run_id).data.metrics
    best = max(history, key=lambda point: (point.value, -point.step))
    assert metrics["best_val_accuracy"] == best.value
    assert metrics["best_val_accuracy_step"] == best.step
    for threshold in ("0.5", "0.43", "0.35"):
        assert f"tp_at_{threshold}" in metrics
    assert result.registered_version == "1"
    second = train(
        frame, target, "xgboost", task="cancer", register="cancer-model", settings=settings
    )
    assert second.registered_version == "2"


def test_breast_cancer_classes_are_named_from_evaluation_to_served_answers(
    settings: Settings, tmp_path: Path
) -> None:
    import warnings

    from flowscope.serving import create_serving_app
    from flowscope.serving.history import inference_history
    from flowscope.serving.predict import predict_file
    from flowscope.web.inference_charts import inference_figures

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    frame, target = load_builtin("breast_cancer")  # scikit-learn's codes: 0 malignant, 1 benign
    result = train(
        frame,
        target,
        "random_forest",
        {"n_estimators": 20},
        task="cancer",
        register="cancer",
        settings=settings,
        explain=False,
    )
    client = MlflowClient(settings.tracking_uri)
    assert {"recall_0", "recall_1"} <= set(client.get_run(result.run_id).data.metrics)
    for table in ("metrics", "confusion_matrix"):
        local = client.download_artifacts(result.run_id, f"evaluation/{table}.json", str(tmp_path))
        data = json.loads(Path(local).read_text())
        assert data["labels"] == [0, 1] and data["class_names"] == ["malignant", "benign"]

    rows = frame.drop(columns=[target]).iloc[::50]
    served = create_serving_app(settings.model_copy(update={"monitor": False}), "cancer/1")
    with TestClient(served) as http:
        answer = http.post("/predict", json=rows.to_dict(orient="records")).json()
        described = http.get("/model").json()
    named = {0: "malignant", 1: "benign"}
    assert [row["class_name"] for row in answer["predictions"]] == [
        named[row["prediction"]] for row in answer["predictions"]
    ]
    assert set(answer["predictions"][0]["probabilities"]) == {"0", "1"}  # keyed by label
    assert described["class_names"] == ["malignant", "benign"]

    # inference counts: metric names keep the labels, the run says what they are called
    csv = tmp_path / "rows.csv"
    rows.to_csv(csv, index=False)
    counted = predict_file(settings, "cancer/1", csv, None)
    assert set(counted.class_counts) <= {"malignant", "benign"}
    assert sum(counted.class_counts.values()) == len(rows)
    inference = client.get_run(counted.run_id)
    assert {"count_0", "count_1"} <= set(inference.data.metrics)
    history = inference_history(settings, "cancer")
    assert history["class_names"] == {"0": "malignant", "1": "benign"}
    legend = {trace.name for trace in inference_figures(history)["classes"].data}
    assert legend == {"malignant (0)", "benign (1)"}


def test_quantile_regression_logs_pinball_and_coverage(settings: Settings, tmp_path: Path) -> None:
    frame, target = load_builtin("diabetes")
    result = train(frame, target, "lightgbm_quantile", task="diabetes-q", settings=settings)
    assert result.problem == "quantile"
    client = MlflowClient(settings.tracking_uri)
    metrics = client.get_run(result.run_id).data.metrics
    predictions = pd.read_parquet(
        client.download_artifacts(result.run_id, "evaluation/predictions.parquet", str(tmp_path))
    )
    for level in (0.1, 0.5, 0.9):
        expected = mean_pinball_loss(predictions["y_true"], predictions[f"q_{level}"], alpha=level)
        assert metrics[f"pinball_{level}"] == pytest.approx(expected)
    inside = (predictions["y_true"] >= predictions["q_0.1"]) & (
        predictions["y_true"] <= predictions["q_0.9"]
    )
    assert metrics["coverage_0.1_0.9"] == pytest.approx(inside.mean())


def test_regression_with_categorical_and_missing_values(settings: Settings, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "size": rng.normal(100, 20, n),
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "rooms": rng.integers(1, 6, n).astype(float),
        }
    )
    frame["price"] = frame["size"] * 3 + frame["city"].map({"paris": 200, "lyon": 80, "nice": 120})
    frame.loc[::17, "size"] = np.nan
    frame.loc[::23, "city"] = None
    result = train(frame, "price", "ridge", task="prices", settings=settings)
    assert result.problem == "regression"
    client = MlflowClient(settings.tracking_uri)
    predictions = pd.read_parquet(
        client.download_artifacts(result.run_id, "evaluation/predictions.parquet", str(tmp_path))
    )
    rmse = np.sqrt(mean_squared_error(predictions["y_true"], predictions["y_pred"]))
    assert result.metrics["rmse"] == pytest.approx(rmse)
    model = _logged_model(settings, result.run_id, tmp_path)
    unseen = pd.DataFrame({"size": [np.nan], "city": ["marseille"], "rooms": [2.0]})
    assert np.isfinite(model.predict(unseen)).all()  # unknown category and a gap: no crash


@pytest.mark.parametrize(
    ("frame", "target", "model_type", "params", "message"),
    [
        (pd.DataFrame(), "y", "random_forest", None, "empty"),
        (pd.DataFrame({"x": range(20), "y": [1] * 20}), "y", "random_forest", None, "constant"),
        (pd.DataFrame({"x": range(20), "y": range(20)}), "label", "random_forest", None, "label"),
        (
            pd.DataFrame({"x": range(200), "y": [f"c{i}" for i in range(200)]}),
            "y",
            "random_forest",
            None,
            "classes",
        ),
        (None, "species", "deep_forest", None, "unknown model type"),
        (None, "species", "random_forest", {"n_trees": "5"}, "n_trees"),
        (None, "species", "random_forest", {"n_estimators": "-3"}, "n_estimators"),
        (None, "species", "ridge", None, "ridge"),
        (None, "species", "lightgbm_quantile", None, "quantile"),
    ],
)
def test_bad_input_is_refused_before_any_run_exists(
    settings: Settings,
    frame: pd.DataFrame | None,
    target: str,
    model_type: str,
    params: dict[str, str] | None,
    message: str,
) -> None:
    if frame is None:
        frame, _ = load_builtin("iris")
    with pytest.raises(FlowscopeError, match=message):
        train(frame, target, model_type, params, task="refused", settings=settings)
    assert _experiment_runs(settings, "refused") == []
    assert not list(settings.journal_dir.glob("*.journal"))


def test_class_names_naming_two_classes_alike_are_refused_before_any_run(
    settings: Settings,
) -> None:
    frame, target = load_builtin("iris")
    names = {"setosa": "flower", "versicolor": "flower"}
    with pytest.raises(FlowscopeError, match="same name"):
        train(frame, target, task="refused", settings=settings, class_names=names)
    assert _experiment_runs(settings, "refused") == []

"""Every number an evaluation produces equals scikit-learn's on the same real-model output."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from mlflow.utils.validation import _validate_metric_name
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_pinball_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    roc_curve,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from flowscope.errors import FlowscopeError
from flowscope.tracking.evaluation import (
    Evaluation,
    evaluate_classification,
    evaluate_quantiles,
    evaluate_regression,
    format_level,
    metric_key_part,
    table_class_names,
)

THRESHOLDS = [0.5, 0.43, 0.35]


@dataclass
class Fitted:
    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray
    classes: list[Any]


@pytest.fixture(scope="module")
def binary() -> Fitted:
    """Breast cancer with the class names as labels: sorted, "malignant" is the positive."""
    data = load_breast_cancer()
    y = data.target_names[data.target]
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, y, test_size=0.3, random_state=0, stratify=y
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x_train, y_train)
    return Fitted(y_test, model.predict(x_test), model.predict_proba(x_test), list(model.classes_))


@pytest.fixture(scope="module")
def multiclass() -> Fitted:
    data = load_iris()
    y = data.target_names[data.target]
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, y, test_size=0.4, random_state=1, stratify=y
    )
    model = RandomForestClassifier(n_estimators=30, max_depth=2, random_state=0)
    model.fit(x_train, y_train)
    return Fitted(y_test, model.predict(x_test), model.predict_proba(x_test), list(model.classes_))


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_diabetes(return_X_y=True)
    return tuple(train_test_split(x, y, test_size=0.3, random_state=0))


@pytest.fixture(scope="module")
def regression(diabetes: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    x_train, x_test, y_train, y_test = diabetes
    return y_test, LinearRegression().fit(x_train, y_train).predict(x_test)


@pytest.fixture(scope="module")
def quantile_predictions(
    diabetes: tuple[np.ndarray, ...],
) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    x_train, x_test, y_train, y_test = diabetes
    predictions = {
        level: GradientBoostingRegressor(
            loss="quantile", alpha=level, n_estimators=40, max_depth=2, random_state=0
        )
        .fit(x_train, y_train)
        .predict(x_test)
        for level in (0.1, 0.5, 0.9)
    }
    return y_test, predictions


def assert_artifacts_valid(result: Evaluation) -> None:
    """Tables load in any JSON reader, figures render, metric keys are accepted by MLflow."""
    for table in result.tables.values():
        json.dumps(table, allow_nan=False)
    for name, figure in result.figures.items():
        assert name.endswith(".png")
        assert isinstance(figure, Figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue().startswith(b"\x89PNG")
    for key, value in result.metrics.items():
        _validate_metric_name(key)
        assert isinstance(value, float) and np.isfinite(value), key
    assert result.tables["metrics.json"]["metrics"] == result.metrics


# -- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("setosa", "setosa"),
        (3, "3"),
        (np.int64(1), "1"),
        ("a/b c:d+e", "a_b c_d_e"),
        ("≥50k", "_50k"),
        ("class-1.5", "class-1.5"),
    ],
)
def test_metric_key_part_replaces_what_mlflow_refuses(label: Any, expected: str) -> None:
    assert metric_key_part(label) == expected
    _validate_metric_name(f"precision_{metric_key_part(label)}")


@pytest.mark.parametrize(
    ("level", "expected"),
    [(0.5, "0.5"), (0.43, "0.43"), (0.35, "0.35"), (0.1, "0.1"), (1e-7, "0.0000001")],
)
def test_format_level_is_compact(level: float, expected: str) -> None:
    assert format_level(level) == expected


def test_labels_that_clash_after_sanitising_are_refused() -> None:
    with pytest.raises(FlowscopeError, match="clashing metric names"):
        evaluate_classification(["a/b", "a:b", "a/b"], ["a:b", "a/b", "a/b"])


def test_awkward_labels_give_valid_metric_names() -> None:
    result = evaluate_classification(["<=50K", ">50K", ">50K"], ["<=50K", "<=50K", ">50K"])
    assert {"precision___50K", "precision__50K"} <= set(result.metrics)
    assert_artifacts_valid(result)


# -- binary --------------------------------------------------------------------------------


def test_binary_metrics_equal_sklearn(binary: Fitted) -> None:
    score = binary.proba[:, 1]
    result = evaluate_classification(binary.y_true, binary.y_pred, score)
    y, pred, classes = binary.y_true, binary.y_pred, binary.classes
    assert result.problem == "binary"
    m = result.metrics
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    macro = precision_recall_fscore_support(
        y, pred, labels=classes, average="macro", zero_division=0
    )
    assert [m["precision"], m["recall"], m["f1"]] == pytest.approx(list(macro[:3]))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y == classes[1], score))
    assert m["log_loss"] == pytest.approx(log_loss(y, binary.proba, labels=classes))
    assert m["average_precision"] == pytest.approx(average_precision_score(y == classes[1], score))
    per_class = precision_recall_fscore_support(y, pred, labels=classes, zero_division=0)
    for name, values in zip(("precision", "recall", "f1", "support"), per_class, strict=True):
        for label, value in zip(classes, values, strict=True):
            assert m[f"{name}_{label}"] == pytest.approx(value)
    assert_artifacts_valid(result)


def test_binary_thresholds_equal_confusion_matrix_at_threshold(binary: Fitted) -> None:
    score = binary.proba[:, 1]
    result = evaluate_classification(binary.y_true, binary.y_pred, score, thresholds=THRESHOLDS)
    is_positive = binary.y_true == "malignant"
    rows = result.tables["thresholds.json"]["rows"]
    assert result.tables["thresholds.json"]["positive_label"] == "malignant"
    assert [row["threshold"] for row in rows] == THRESHOLDS
    for cut, row in zip(THRESHOLDS, rows, strict=True):
        predicted = score >= cut
        tn, fp, fn, tp = confusion_matrix(is_positive, predicted, labels=[False, True]).ravel()
        expected = {
            "tp": tp,
            "tn": tn,
            "fp": fp,
            "fn": fn,
            "accuracy": accuracy_score(is_positive, predicted),
            "precision": precision_score(is_positive, predicted, zero_division=0),
            "recall": recall_score(is_positive, predicted, zero_division=0),
            "f1": f1_score(is_positive, predicted, zero_division=0),
        }
        for name, value in expected.items():
            assert result.metrics[f"{name}_at_{format_level(cut)}"] == pytest.approx(value)
            assert row[name] == pytest.approx(value)
    assert "recall_at_0.43" in result.metrics
    assert_artifacts_valid(result)


def test_binary_curves_equal_sklearn(binary: Fitted) -> None:
    score = binary.proba[:, 1]
    is_positive = binary.y_true == "malignant"
    result = evaluate_classification(binary.y_true, binary.y_pred, score)
    roc = result.tables["roc_curve.json"]
    fpr, tpr, thresholds = roc_curve(is_positive, score)
    assert roc["fpr"] == pytest.approx(fpr.tolist())
    assert roc["tpr"] == pytest.approx(tpr.tolist())
    # scikit-learn's leading inf threshold ("nothing positive") is stored as null.
    assert roc["thresholds"][0] is None and np.isinf(thresholds[0])
    assert roc["thresholds"][1:] == pytest.approx(thresholds[1:].tolist())
    assert roc["auc"] == pytest.approx(roc_auc_score(is_positive, score))
    pr = result.tables["pr_curve.json"]
    precision, recall, pr_thresholds = precision_recall_curve(is_positive, score)
    assert pr["precision"] == pytest.approx(precision.tolist())
    assert pr["recall"] == pytest.approx(recall.tolist())
    assert pr["thresholds"] == pytest.approx(pr_thresholds.tolist())
    assert pr["average_precision"] == pytest.approx(average_precision_score(is_positive, score))
    assert {
        "roc_curve.png",
        "pr_curve.png",
        "confusion_matrix.png",
        "confusion_matrix_normalized.png",
    } <= set(result.figures)


def test_confusion_matrix_table_equals_sklearn(binary: Fitted) -> None:
    result = evaluate_classification(binary.y_true, binary.y_pred)
    table = result.tables["confusion_matrix.json"]
    assert table["labels"] == binary.classes
    counts = confusion_matrix(binary.y_true, binary.y_pred, labels=binary.classes)
    normalized = confusion_matrix(
        binary.y_true, binary.y_pred, labels=binary.classes, normalize="true"
    )
    assert table["counts"] == counts.tolist()
    assert np.allclose(table["normalized"], normalized)
    # Without scores there is nothing score-based to report.
    assert not {"roc_auc", "log_loss"} & set(result.metrics)
    assert set(result.tables) == {"metrics.json", "confusion_matrix.json"}


def test_binary_predictions_frame_from_a_1d_score(binary: Fitted, tmp_path: Any) -> None:
    score = binary.proba[:, 1]
    result = evaluate_classification(binary.y_true, y_score=score, thresholds=0.43)
    frame = result.predictions
    assert list(frame.columns) == ["row", "y_true", "y_pred", "proba_benign", "proba_malignant"]
    assert frame["row"].tolist() == list(range(len(score)))
    assert np.allclose(frame["proba_malignant"], score)
    assert np.allclose(frame["proba_benign"], 1 - score)
    # No y_pred: predicted positive where the score reaches 0.5.
    expected = np.where(score >= 0.5, "malignant", "benign")
    assert frame["y_pred"].tolist() == expected.tolist()
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score(binary.y_true, expected))
    assert "f1_at_0.43" in result.metrics and "f1_at_0.5" not in result.metrics
    frame.to_parquet(tmp_path / "predictions.parquet", index=False)
    assert pd.read_parquet(tmp_path / "predictions.parquet").equals(frame)


def test_labels_fix_the_class_order_and_the_positive_class(binary: Fitted) -> None:
    # With labels reversed "benign" is positive and the score columns follow that order.
    labels = ["malignant", "benign"]
    proba = binary.proba[:, ::-1]
    result = evaluate_classification(binary.y_true, binary.y_pred, proba, labels=labels)
    is_benign = binary.y_true == "benign"
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(is_benign, proba[:, 1]))
    assert result.metrics["log_loss"] == pytest.approx(
        log_loss(binary.y_true, binary.proba, labels=binary.classes)
    )
    assert (
        result.tables["confusion_matrix.json"]["counts"]
        == confusion_matrix(binary.y_true, binary.y_pred, labels=labels).tolist()
    )
    assert result.tables["roc_curve.json"]["positive_label"] == "benign"
    predicted = (proba[:, 1] >= 0.35).astype(int)
    cut = evaluate_classification(binary.y_true, y_score=proba, labels=labels, thresholds=[0.35])
    assert cut.metrics["tp_at_0.35"] == np.sum(predicted & is_benign)


def test_class_names_label_tables_and_figures_but_not_metric_names() -> None:
    # scikit-learn's own coding of breast cancer: 0 is malignant, 1 benign
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=0, stratify=data.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_train, y_train)
    predicted, score = model.predict(x_test), model.predict_proba(x_test)[:, 1]
    names = {0: "malignant", 1: "benign"}
    result = evaluate_classification(y_test, predicted, score, labels=[0, 1], class_names=names)
    plain = evaluate_classification(y_test, predicted, score, labels=[0, 1])
    assert result.metrics == plain.metrics and "recall_0" in result.metrics
    for table in ("metrics.json", "confusion_matrix.json"):
        assert result.tables[table]["labels"] == [0, 1]
        assert result.tables[table]["class_names"] == ["malignant", "benign"]
        assert table_class_names(result.tables[table]) == ["malignant", "benign"]
        assert plain.tables[table]["class_names"] == ["0", "1"]
    axes = result.figures["confusion_matrix.png"].axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["malignant (0)", "benign (1)"]
    legend = result.figures["roc_curve.png"].axes[0].get_legend().get_texts()
    assert legend[0].get_text().startswith("benign (1)")
    assert_artifacts_valid(result)
    # a table logged before names existed reads as its labels
    assert table_class_names({"labels": [0, 1]}) == ["0", "1"]


def test_two_classes_of_one_name_are_refused(binary: Fitted) -> None:
    with pytest.raises(FlowscopeError, match="same name"):
        evaluate_classification(
            binary.y_true, binary.y_pred, class_names={"benign": "x", "malignant": "x"}
        )


def test_float32_probabilities_are_accepted(binary: Fitted) -> None:
    proba = binary.proba.astype(np.float32)
    result = evaluate_classification(binary.y_true, y_score=proba)
    assert result.metrics["log_loss"] == pytest.approx(
        log_loss(binary.y_true, proba, labels=binary.classes)
    )
    assert result.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(binary.y_true == "malignant", proba[:, 1])
    )


def test_rounded_probabilities_are_renormalised(multiclass: Fitted) -> None:
    # Rows that miss 1 by 2e-4, as rounded probabilities do: more than scikit-learn accepts.
    rounded = multiclass.proba * 0.9998
    result = evaluate_classification(multiclass.y_true, y_score=rounded)
    normalised = rounded / rounded.sum(axis=1, keepdims=True)
    assert result.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(multiclass.y_true, normalised, multi_class="ovr", labels=multiclass.classes)
    )
    assert result.metrics["log_loss"] == pytest.approx(
        log_loss(multiclass.y_true, normalised, labels=multiclass.classes)
    )


def test_single_class_in_y_true_skips_roc_auc(binary: Fitted) -> None:
    keep = binary.y_true == "benign"
    result = evaluate_classification(
        binary.y_true[keep], binary.y_pred[keep], binary.proba[keep, 1], labels=binary.classes
    )
    assert "roc_auc" not in result.metrics
    assert {"roc_auc", "roc_curve", "pr_curve"} <= set(result.tables["metrics.json"]["skipped"])
    assert "roc_curve.json" not in result.tables and "pr_curve.json" not in result.tables
    assert result.metrics["log_loss"] == pytest.approx(
        log_loss(binary.y_true[keep], binary.proba[keep], labels=binary.classes)
    )
    assert "tp_at_0.5" in result.metrics
    assert_artifacts_valid(result)


# -- multiclass ----------------------------------------------------------------------------


def test_multiclass_metrics_equal_sklearn(multiclass: Fitted) -> None:
    y, pred, proba, classes = (
        multiclass.y_true,
        multiclass.y_pred,
        multiclass.proba,
        multiclass.classes,
    )
    result = evaluate_classification(y, y_score=proba)
    assert result.problem == "multiclass"
    # Without y_pred the prediction is the argmax, which is what the forest predicts.
    assert result.predictions["y_pred"].tolist() == pred.tolist()
    m = result.metrics
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["precision"] == pytest.approx(
        precision_score(y, pred, average="macro", zero_division=0)
    )
    assert m["recall"] == pytest.approx(recall_score(y, pred, average="macro", zero_division=0))
    assert m["roc_auc"] == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    )
    assert m["log_loss"] == pytest.approx(log_loss(y, proba, labels=classes))
    recalls = recall_score(y, pred, labels=classes, average=None, zero_division=0)
    for label, value in zip(classes, recalls, strict=True):
        assert m[f"recall_{label}"] == pytest.approx(value)
        assert m[f"support_{label}"] == np.sum(y == label)
    assert not any("_at_" in key for key in m)
    frame = result.predictions
    assert [f"proba_{label}" for label in classes] == list(frame.columns[3:])
    assert np.allclose(frame[[f"proba_{label}" for label in classes]], proba)
    assert_artifacts_valid(result)


def test_multiclass_one_vs_rest_curves_equal_sklearn(multiclass: Fitted) -> None:
    result = evaluate_classification(multiclass.y_true, multiclass.y_pred, multiclass.proba)
    table = result.tables["roc_curve_ovr.json"]
    assert [curve["label"] for curve in table["curves"]] == multiclass.classes
    for index, curve in enumerate(table["curves"]):
        is_class = multiclass.y_true == curve["label"]
        fpr, tpr, _ = roc_curve(is_class, multiclass.proba[:, index])
        assert curve["fpr"] == pytest.approx(fpr.tolist())
        assert curve["tpr"] == pytest.approx(tpr.tolist())
        assert curve["auc"] == pytest.approx(roc_auc_score(is_class, multiclass.proba[:, index]))
    assert "roc_curve_ovr.png" in result.figures


def test_multiclass_missing_class_skips_roc_auc(multiclass: Fitted) -> None:
    keep = multiclass.y_true != "setosa"
    result = evaluate_classification(
        multiclass.y_true[keep], y_score=multiclass.proba[keep], labels=multiclass.classes
    )
    assert "roc_auc" not in result.metrics
    assert "setosa" in result.tables["metrics.json"]["skipped"]["roc_auc"]
    assert result.metrics["support_setosa"] == 0.0
    assert result.tables["roc_curve_ovr.json"]["skipped"] == ["setosa"]
    assert_artifacts_valid(result)


# -- regression and quantiles --------------------------------------------------------------


def test_regression_metrics_equal_sklearn(regression: tuple[np.ndarray, np.ndarray]) -> None:
    y, pred = regression
    result = evaluate_regression(y, pred)
    assert result.problem == "regression"
    assert result.metrics["rmse"] == pytest.approx(root_mean_squared_error(y, pred))
    assert result.metrics["mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert result.metrics["r2"] == pytest.approx(r2_score(y, pred))
    assert result.metrics["mape"] == pytest.approx(mean_absolute_percentage_error(y, pred))
    frame = result.predictions
    assert list(frame.columns) == ["row", "y_true", "y_pred", "residual"]
    assert np.allclose(frame["residual"], y - pred)
    assert "residuals.png" in result.figures
    assert_artifacts_valid(result)


def test_regression_with_zero_targets_has_no_mape() -> None:
    result = evaluate_regression(pd.Series([0.0, 1.0, 2.0]), [0.5, 1.0, 2.5])
    assert "mape" not in result.metrics
    expected = root_mean_squared_error([0, 1, 2], [0.5, 1, 2.5])
    assert result.metrics["rmse"] == pytest.approx(expected)


def test_quantile_metrics_equal_sklearn(
    quantile_predictions: tuple[np.ndarray, dict[float, np.ndarray]],
) -> None:
    y, predictions = quantile_predictions
    result = evaluate_quantiles(y, predictions)
    assert result.problem == "quantile"
    m = result.metrics
    for level, predicted in predictions.items():
        assert m[f"pinball_{level}"] == pytest.approx(mean_pinball_loss(y, predicted, alpha=level))
    lower, upper = predictions[0.1], predictions[0.9]
    assert m["coverage_0.1_0.9"] == pytest.approx(np.mean((y >= lower) & (y <= upper)))
    assert m["interval_width_0.1_0.9"] == pytest.approx(np.mean(upper - lower))
    assert m["rmse"] == pytest.approx(root_mean_squared_error(y, predictions[0.5]))
    assert m["mae"] == pytest.approx(mean_absolute_error(y, predictions[0.5]))
    assert m["r2"] == pytest.approx(r2_score(y, predictions[0.5]))
    assert list(result.predictions.columns) == ["row", "y_true", "q_0.1", "q_0.5", "q_0.9"]
    assert np.allclose(result.predictions["q_0.9"], upper)
    assert result.tables["metrics.json"]["intervals"] == [[0.1, 0.9]]
    assert "interval.png" in result.figures
    assert_artifacts_valid(result)


def test_quantile_explicit_intervals(
    quantile_predictions: tuple[np.ndarray, dict[float, np.ndarray]],
) -> None:
    y, predictions = quantile_predictions
    result = evaluate_quantiles(
        y, {0.1: predictions[0.1], 0.9: predictions[0.9]}, intervals=[(0.1, 0.9)]
    )
    assert set(result.metrics) == {
        "pinball_0.1",
        "pinball_0.9",
        "coverage_0.1_0.9",
        "interval_width_0.1_0.9",
    }
    no_pairs = evaluate_quantiles(y, {0.5: predictions[0.5], 0.9: predictions[0.9]})
    assert not any(key.startswith("coverage_") for key in no_pairs.metrics)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: evaluate_classification([0, 1, 1], [0, 1]),
            "y_true has 3 values but y_pred has 2",
        ),
        (
            lambda: evaluate_classification([0, 1], y_score=[0.2, 0.3, 0.4]),
            "y_true has 2 values but y_score has 3",
        ),
        (lambda: evaluate_classification([], []), "y_true is empty"),
        (lambda: evaluate_classification([0, 1]), "needs y_pred or y_score"),
        (
            lambda: evaluate_classification([0, 1, 2], y_score=[[0.5, 0.5]] * 3),
            "y_score has 2 columns but there are 3 classes",
        ),
        (
            lambda: evaluate_classification([0, 1, 2], y_score=[0.1, 0.2, 0.3]),
            "1-D y_score is the positive-class score of a binary problem",
        ),
        (
            lambda: evaluate_classification([0.0, np.nan, 1.0], [0, 1, 1]),
            "y_true contains 1 missing value",
        ),
        (lambda: evaluate_classification(["a", "b"], ["a", None]), "y_pred contains 1 missing"),
        (lambda: evaluate_classification([0, 1], y_score=[0.2, np.nan]), "y_score contains 1 NaN"),
        (
            lambda: evaluate_classification([0, 1], y_score=[-2.0, 3.0]),
            "probabilities in \\[0, 1\\]",
        ),
        (
            lambda: evaluate_classification([0, 1], y_score=[[0.2, 0.2], [0.5, 0.5]]),
            "1 row\\(s\\) of y_score do not sum to 1",
        ),
        (lambda: evaluate_classification([0, 0], [0, 0]), "at least two classes"),
        (
            lambda: evaluate_classification([0, 1, 2], [0, 1, 2], labels=[0, 1]),
            "y_true contains labels not among the classes",
        ),
        (lambda: evaluate_classification([0, 1], [0, 1], labels=[0, 1, 1]), "duplicates"),
        (lambda: evaluate_classification([0, 1], ["0", "1"]), "mix label types"),
        (lambda: evaluate_classification([0, 1], [0, 1], thresholds=[0.5]), "need y_score"),
        (
            lambda: evaluate_classification([0, 1, 2], [0, 1, 2], thresholds=[0.5]),
            "binary classification only",
        ),
        (lambda: evaluate_regression([1.0, 2.0], [1.0, np.nan]), "y_pred contains 1 NaN"),
        (lambda: evaluate_regression([1.0, np.inf], [1.0, 2.0]), "y_true contains 1 infinite"),
        (lambda: evaluate_regression(["a", "b"], [1.0, 2.0]), "y_true must be numeric"),
        (
            lambda: evaluate_regression([1.0, 2.0, 3.0], [1.0]),
            "y_true has 3 values but y_pred has 1",
        ),
        (lambda: evaluate_regression([], []), "y_true is empty"),
        (lambda: evaluate_quantiles([1.0, 2.0], {}), "at least one level"),
        (lambda: evaluate_quantiles([1.0, 2.0], {1.5: [1.0, 2.0]}), "outside \\(0, 1\\)"),
        (
            lambda: evaluate_quantiles([1.0, 2.0], {0.5: [1.0]}),
            "y_true has 2 values but the predictions for quantile 0.5 has 1",
        ),
        (
            lambda: evaluate_quantiles(
                [1.0, 2.0], {0.1: [0.0, 1.0], 0.9: [2.0, 3.0]}, intervals=[(0.05, 0.9)]
            ),
            "quantile 0.05, which was not given",
        ),
        (
            lambda: evaluate_quantiles(
                [1.0, 2.0], {0.1: [0.0, 1.0], 0.9: [2.0, 3.0]}, intervals=[(0.9, 0.1)]
            ),
            "lo < hi",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(call: Any, message: str) -> None:
    with pytest.raises(FlowscopeError, match=message):
        call()


def test_missing_values_in_a_nullable_column_are_named() -> None:
    y_true = pd.Series([1.0, 2.0, None], dtype="Float64")
    with pytest.raises(FlowscopeError, match="y_true contains 1 NaN or missing"):
        evaluate_regression(y_true, [1.0, 2.0, 3.0])
    with pytest.raises(FlowscopeError, match="y_score contains 1 NaN or missing"):
        evaluate_classification([0, 1, 1], y_score=pd.Series([0.1, None, 0.8], dtype="Float64"))


def test_no_pyplot_figure_is_left_open(binary: Fitted) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    evaluate_classification(binary.y_true, binary.y_pred, binary.proba)
    assert plt.get_fignums() == before


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, -0.1, float("nan")])
def test_threshold_outside_open_unit_interval_is_refused(threshold: float) -> None:
    with pytest.raises(FlowscopeError, match="outside \\(0, 1\\)"):
        evaluate_classification([0, 1], y_score=[0.2, 0.8], thresholds=[0.5, threshold])

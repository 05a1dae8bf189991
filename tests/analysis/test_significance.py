"""Paired significance tests: numbers equal scikit-learn's and scipy's, the tests reject at
their nominal rate when two models are equally good and nearly always when one is better, and
two real runs in a real store compare end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, binomtest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import flowscope
from flowscope.analysis.significance import (
    IncomparableError,
    compare_predictions,
    mcnemar_exact,
    paired_bootstrap,
    significance_between,
    significance_matrix,
)
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.tracking.evaluation import evaluate_classification, evaluate_regression

ALPHA = 0.05
SIMULATIONS = 400
ROWS = 500


def _noisy_predictions(
    rng: np.random.Generator, y: np.ndarray, accuracy: float, classes: int = 3
) -> np.ndarray:
    """Labels of a model right with probability ``accuracy`` on each row, independently."""
    right = rng.random(y.shape) < accuracy
    wrong = (y + rng.integers(1, classes, size=y.shape)) % classes
    return np.where(right, y, wrong)


def _rejection_rates(accuracy_a: float, accuracy_b: float, simulations: int) -> dict[str, float]:
    """Share of simulated datasets on which McNemar, the bootstrap interval and the combined
    verdict reject "equally accurate" at ALPHA."""
    rejected = {"mcnemar": 0, "bootstrap": 0, "verdict": 0}
    for seed in range(simulations):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, ROWS)
        a, b = _noisy_predictions(rng, y, accuracy_a), _noisy_predictions(rng, y, accuracy_b)
        mcnemar = mcnemar_exact(y, a, b)["p_value"] < ALPHA
        boot = paired_bootstrap(y, a, b, confidence=1 - ALPHA, seed=seed)
        outside = boot["ci_low"] > 0 or boot["ci_high"] < 0
        rejected["mcnemar"] += mcnemar
        rejected["bootstrap"] += outside
        rejected["verdict"] += mcnemar and outside
    return {name: count / simulations for name, count in rejected.items()}


def test_equally_good_models_are_rejected_at_about_the_nominal_rate() -> None:
    rates = _rejection_rates(0.8, 0.8, SIMULATIONS)
    # Where the rejection count of an exactly nominal test falls 99.9% of the time.
    low, high = (count / SIMULATIONS for count in binom.interval(0.999, SIMULATIONS, ALPHA))
    print(f"type I error over {SIMULATIONS} null datasets: {rates} (band [{low}, {high}])")
    assert low <= rates["mcnemar"] <= high, rates
    assert low <= rates["bootstrap"] <= high, rates
    # Requiring both can only be more conservative, never less.
    assert rates["verdict"] <= high, rates


def test_a_clearly_better_model_is_detected_nearly_always() -> None:
    rates = _rejection_rates(0.9, 0.8, 200)
    print(f"power at 0.9 against 0.8 on {ROWS} rows: {rates}")
    assert rates["mcnemar"] > 0.95, rates
    assert rates["bootstrap"] > 0.95, rates
    assert rates["verdict"] > 0.95, rates


def test_mcnemar_counts_and_p_value_match_scipy_and_the_exact_formula() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    a, b = _noisy_predictions(rng, y, 0.85, 2), _noisy_predictions(rng, y, 0.8, 2)
    result = mcnemar_exact(y, a, b)
    b01 = int(np.sum((a == y) & (b != y)))
    b10 = int(np.sum((a != y) & (b == y)))
    assert (result["b01"], result["b10"]) == (b01, b10)
    assert result["both_right"] + result["both_wrong"] + b01 + b10 == len(y)
    n, k = b01 + b10, min(b01, b10)
    assert result["p_value"] == pytest.approx(binomtest(k, n, 0.5).pvalue, rel=1e-12)
    reference = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
    assert result["p_value"] == pytest.approx(reference, rel=1e-9)


def test_mcnemar_without_disagreement_has_p_value_one() -> None:
    result = mcnemar_exact([0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 0, 0])
    assert (result["b01"], result["b10"], result["p_value"]) == (0, 0, 1.0)


def _classification_data(classes: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(classes)
    y = rng.integers(0, classes, 400)
    proba_a = rng.dirichlet(np.ones(classes), 400)
    proba_a[np.arange(400), y] += 1.0
    proba_a /= proba_a.sum(axis=1, keepdims=True)
    proba_b = rng.dirichlet(np.ones(classes), 400)
    proba_a, proba_b = np.round(proba_a, 2), proba_b  # rounding makes ties for the AUC
    proba_a /= proba_a.sum(axis=1, keepdims=True)
    return y, proba_a.argmax(axis=1), proba_b.argmax(axis=1), proba_a, proba_b


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize(
    ("metric", "score"),
    [
        ("accuracy", accuracy_score),
        ("f1", lambda y, p: f1_score(y, p, average="macro", zero_division=0)),
        ("precision", lambda y, p: precision_score(y, p, average="macro", zero_division=0)),
        ("recall", lambda y, p: recall_score(y, p, average="macro", zero_division=0)),
    ],
)
def test_observed_difference_equals_scikit_learn(classes: int, metric: str, score) -> None:
    y, a, b, _, _ = _classification_data(classes)
    result = paired_bootstrap(y, a, b, metric, n_resamples=200)
    assert result["difference"] == pytest.approx(score(y, a) - score(y, b), abs=1e-12)
    assert result["ci_low"] <= result["difference"] <= result["ci_high"]


@pytest.mark.parametrize("classes", [2, 3])
def test_probability_metrics_equal_scikit_learn(classes: int) -> None:
    y, a, b, proba_a, proba_b = _classification_data(classes)
    ovr = {"multi_class": "ovr"} if classes > 2 else {}
    given_a = proba_a[:, 1] if classes == 2 else proba_a
    given_b = proba_b[:, 1] if classes == 2 else proba_b
    auc = paired_bootstrap(y, a, b, "roc_auc", proba_a=given_a, proba_b=given_b, n_resamples=50)
    expected = roc_auc_score(y, given_a, **ovr) - roc_auc_score(y, given_b, **ovr)
    assert auc["difference"] == pytest.approx(expected, abs=1e-12)
    loss = paired_bootstrap(y, a, b, "log_loss", proba_a=proba_a, proba_b=proba_b, n_resamples=50)
    assert loss["difference"] == pytest.approx(log_loss(y, proba_a) - log_loss(y, proba_b))
    assert loss["direction"] == "min"
    with pytest.raises(FlowscopeError, match="needs the probabilities"):
        paired_bootstrap(y, a, b, "roc_auc")


@pytest.mark.parametrize(
    ("metric", "score", "direction"),
    [
        ("rmse", root_mean_squared_error, "min"),
        ("mae", mean_absolute_error, "min"),
        ("r2", r2_score, "max"),
    ],
)
def test_regression_differences_equal_scikit_learn(metric: str, score, direction: str) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(100.0, 5.0, 300)
    a, b = y + rng.normal(0, 1.0, 300), y + rng.normal(0, 3.0, 300)
    result = paired_bootstrap(y, a, b, metric, n_resamples=500)
    assert result["difference"] == pytest.approx(score(y, a) - score(y, b), rel=1e-9)
    assert result["direction"] == direction
    assert result["p_value"] < 0.01


def test_bootstrap_is_reproducible() -> None:
    """The same seed gives the same answer, for counts of distinct rows (accuracy) and for
    resampled rows (rmse). How long 2,000 resamples of 10,000 rows take is measured in
    bench/, not asserted here."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 10_000)
    a, b = _noisy_predictions(rng, y, 0.8, 2), _noisy_predictions(rng, y, 0.8, 2)
    first = paired_bootstrap(y, a, b, n_resamples=2000, seed=5)
    assert first == paired_bootstrap(y, a, b, n_resamples=2000, seed=5)
    assert first["resamples"] == 2000 and first["n"] == 10_000
    truth = rng.normal(size=10_000)
    noisy = truth + rng.normal(size=10_000)
    rmse = paired_bootstrap(truth, noisy, truth, "rmse", n_resamples=2000, seed=5)
    assert rmse == paired_bootstrap(truth, noisy, truth, "rmse", n_resamples=2000, seed=5)
    assert rmse["resamples"] == 2000 and rmse["n"] == 10_000


def test_drawing_counts_of_distinct_rows_matches_drawing_rows() -> None:
    """Accuracy resamples how many of each (y_true, a, b) triple; MAE on the 0/1 errors
    resamples rows. Both are the same bootstrap, so their intervals agree up to Monte Carlo
    noise (and the sign: a's error minus b's is b's accuracy minus a's)."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 2000)
    a, b = _noisy_predictions(rng, y, 0.85, 2), _noisy_predictions(rng, y, 0.8, 2)
    by_counts = paired_bootstrap(y, a, b, n_resamples=4000, seed=1)
    errors_a, errors_b = (a != y).astype(float), (b != y).astype(float)
    by_rows = paired_bootstrap(np.zeros(2000), errors_a, errors_b, "mae", n_resamples=4000)
    assert by_counts["difference"] == pytest.approx(-by_rows["difference"])
    assert by_counts["ci_low"] == pytest.approx(-by_rows["ci_high"], abs=0.003)
    assert by_counts["ci_high"] == pytest.approx(-by_rows["ci_low"], abs=0.003)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(FlowscopeError, match="no paired test for metric 'auc'"):
        paired_bootstrap([0, 1], [0, 1], [1, 1], "auc")
    with pytest.raises(FlowscopeError, match="y_true has 3 values but pred_b has 2"):
        paired_bootstrap([0, 1, 1], [0, 1, 1], [1, 1])
    with pytest.raises(FlowscopeError, match="confidence"):
        paired_bootstrap([0, 1], [0, 1], [1, 1], confidence=95)


def _frames(problem: str = "classification") -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)
    if problem == "regression":
        y = rng.normal(size=400)
        return (
            evaluate_regression(y, y + rng.normal(0, 1.0, 400)).predictions,
            evaluate_regression(y, y + rng.normal(0, 0.5, 400)).predictions,
        )
    y = rng.integers(0, 2, 400)
    score_a = np.clip(0.3 * y + 0.7 * rng.random(400), 0, 1)
    score_b = np.clip(0.6 * y + 0.4 * rng.random(400), 0, 1)
    frame_a = evaluate_classification(y, y_score=score_a, labels=[0, 1]).predictions
    frame_b = evaluate_classification(y, y_score=score_b, labels=[0, 1]).predictions
    return frame_a, frame_b


def test_compare_predictions_gives_a_json_able_verdict_for_the_better_model() -> None:
    frame_a, frame_b = _frames()
    verdict = compare_predictions(frame_a, frame_b, n_resamples=500)
    assert verdict["significant"] and verdict["better"] == "b"
    assert verdict["a"] == verdict["value_a"]
    assert verdict["a"] == pytest.approx(accuracy_score(frame_a.y_true, frame_a.y_pred))
    assert verdict["mcnemar"]["p_value"] < verdict["alpha"]
    assert set(verdict) >= {"difference", "ci_low", "ci_high", "p_bootstrap", "n", "metric"}
    json.dumps(verdict, allow_nan=False)  # plain floats, ints, strings and None
    auc = compare_predictions(frame_a, frame_b, metric="roc_auc", n_resamples=500)
    expected = roc_auc_score(frame_a.y_true, frame_a.proba_1) - roc_auc_score(
        frame_b.y_true, frame_b.proba_1
    )
    assert auc["difference"] == pytest.approx(expected)
    assert auc["better"] == "b"
    # Shuffled rows are the same data: frames are aligned by row id.
    shuffled = compare_predictions(frame_a.sample(frac=1, random_state=0), frame_b)
    assert shuffled["difference"] == pytest.approx(verdict["difference"])


def test_lower_is_better_metrics_name_the_model_with_the_smaller_error() -> None:
    frame_a, frame_b = _frames("regression")
    verdict = compare_predictions(frame_a, frame_b, n_resamples=500)
    assert verdict["metric"] == "rmse" and verdict["direction"] == "min"
    assert verdict["difference"] > 0 and verdict["better"] == "b"
    assert verdict["mcnemar"] is None


def test_equal_models_are_not_significant() -> None:
    frame_a, _ = _frames()
    verdict = compare_predictions(frame_a, frame_a.copy(), n_resamples=200)
    assert verdict["difference"] == 0 and verdict["p_bootstrap"] == 1.0
    assert not verdict["significant"] and verdict["better"] is None


def test_predictions_on_different_data_cannot_be_compared() -> None:
    frame_a, frame_b = _frames()
    with pytest.raises(IncomparableError, match="400 rows against 399"):
        compare_predictions(frame_a, frame_b.iloc[:399])
    moved = frame_b.assign(row=frame_b.row + 1)
    with pytest.raises(FlowscopeError, match="row ids differ"):
        compare_predictions(frame_a, moved)
    flipped = frame_b.copy()
    flipped.loc[:9, "y_true"] = 1 - flipped.loc[:9, "y_true"]
    with pytest.raises(FlowscopeError, match="y_true differs on 10 of 400 rows"):
        compare_predictions(frame_a, flipped)
    regression, _ = _frames("regression")
    with pytest.raises(FlowscopeError, match=r"different data|regression"):
        compare_predictions(frame_a, regression)
    with pytest.raises(FlowscopeError, match="rmse does not apply"):
        compare_predictions(frame_a, frame_b, metric="rmse")
    without_scores = frame_b.drop(columns=["proba_0", "proba_1"])
    with pytest.raises(FlowscopeError, match="probability columns differ"):
        compare_predictions(frame_a, without_scores, metric="log_loss")


def _log_model_run(settings: flowscope.Settings, name: str, model, split) -> str:
    X_train, X_test, y_train, y_test = split
    model.fit(X_train, y_train)
    with flowscope.start_run("cancer", run_name=name, settings=settings) as run:
        run.log_evaluation(y_test, model.predict(X_test), model.predict_proba(X_test)[:, 1])
    return str(run.run_id)


def test_significance_between_real_runs_finds_the_better_model(
    settings: flowscope.Settings,
) -> None:
    data = load_breast_cancer()
    split = train_test_split(
        data.data, data.target, test_size=0.5, random_state=0, stratify=data.target
    )
    logistic = make_pipeline(StandardScaler(), LogisticRegression())
    stump = DecisionTreeClassifier(max_depth=1, random_state=0)
    run_lr = _log_model_run(settings, "logistic", logistic, split)
    run_stump = _log_model_run(settings, "stump", stump, split)
    other_split = train_test_split(data.data, data.target, test_size=0.3, random_state=1)
    run_other = _log_model_run(settings, "other-split", stump, other_split)
    with flowscope.start_run("cancer", run_name="no-evaluation", settings=settings) as run:
        run.log_metrics({"accuracy": 0.5})
    bare = str(run.run_id)

    verdict = significance_between(settings, run_stump, run_lr, "accuracy")
    assert verdict is not None
    assert verdict["significant"] and verdict["better"] == "b"
    assert verdict["b"] == run_lr and verdict["difference"] < 0
    assert verdict["value_b"] == pytest.approx(accuracy_score(split[3], logistic.predict(split[1])))
    by_auc = significance_between(settings, run_lr, run_stump, "roc_auc")
    assert by_auc is not None and by_auc["better"] == "a"

    assert significance_between(settings, run_lr, bare) is None
    assert significance_between(settings, run_lr, run_other) is None
    with pytest.raises(FlowscopeError, match="different data"):
        significance_between(settings, run_lr, run_other, strict=True)
    with pytest.raises(NotFoundError, match=r"no evaluation/predictions\.parquet"):
        significance_between(settings, bare, run_lr, strict=True)
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        significance_between(settings, "nope", run_lr)
    with pytest.raises(FlowscopeError, match="no paired test for metric 'training_time_s'"):
        significance_between(settings, run_lr, run_stump, "training_time_s")

    matrix = significance_matrix(settings, [run_lr, run_stump, run_other, bare, run_lr])
    assert matrix["runs"] == [run_lr, run_stump, run_other, bare]
    assert matrix["metric"] == "accuracy"
    assert [(pair["a"], pair["b"]) for pair in matrix["pairs"]] == [(run_lr, run_stump)]
    assert matrix["pairs"][0]["better"] == "a"
    assert [item["run_id"] for item in matrix["skipped"]] == [bare]
    assert "no evaluation/predictions.parquet" in matrix["skipped"][0]["reason"]
    assert {(item["a"], item["b"]) for item in matrix["incomparable"]} == {
        (run_lr, run_other),
        (run_stump, run_other),
    }

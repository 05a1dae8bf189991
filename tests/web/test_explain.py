"""The run page's Explain section and its JSON twin, and the figures built from it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest

from flowscope.config import Settings
from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train
from flowscope.web import charts
from tests.conftest import make_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytest.importorskip("shap")


@pytest.fixture(scope="module")
def explained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, str]]:
    """An iris random forest (explained, three classes) and a quantile run (skipped)."""
    root = tmp_path_factory.mktemp("explain-web")
    settings = make_settings(root, f"sqlite:///{root / 'mlflow.db'}")
    frame, target = load_builtin("iris")
    forest = train(
        frame, target, "random_forest", {"n_estimators": 20}, task="iris", settings=settings
    )
    frame, target = load_builtin("diabetes")
    quantile = train(
        frame, target, "lightgbm_quantile", {"n_estimators": 5}, task="diab", settings=settings
    )
    return settings, {"forest": forest.run_id, "quantile": quantile.run_id}


@pytest.fixture
def web(explained: tuple[Settings, dict[str, str]]) -> Iterator[TestClient]:
    from flowscope.web import create_app

    with TestClient(create_app(explained[0]), raise_server_exceptions=False) as test_client:
        yield test_client


def test_json_twin_holds_importance_beeswarm_dependence_and_waterfall(web, explained) -> None:
    run_id = explained[1]["forest"]
    data = web.get(f"/runs/{run_id}.json").json()["explain"]

    assert data["summary"]["explainer"] == "flowscope_treeshap"
    assert data["summary"]["output_space"] == "probability"
    assert data["summary"]["shap_additivity_error"] < 1e-9
    assert data["outputs"] == ["setosa", "versicolor", "virginica"]
    assert set(data["importance"]) == set(data["outputs"])
    assert len(data["importance"]["setosa"]) == 4
    assert data["rows"] == 30 and data["output"] == "setosa"
    points = data["beeswarm"]["points"]
    assert [point["feature"] for point in points] == data["features"]
    assert all(len(point["shap"]) == 30 and len(point["colour"]) == 30 for point in points)
    assert data["dependence"]["feature"] == data["features"][0]
    assert len(data["dependence"]["x"]) == 30
    waterfall = data["waterfall"]
    total = waterfall["base_value"] + sum(step["shap"] for step in waterfall["steps"])
    assert total == pytest.approx(waterfall["output_value"])
    assert 0.0 <= waterfall["output_value"] <= 1.0  # a probability


def test_query_parameters_choose_class_feature_and_row(web, explained) -> None:
    run_id = explained[1]["forest"]
    default = web.get(f"/runs/{run_id}.json").json()["explain"]
    least = default["features"][-1]
    chosen = {"explain_class": "virginica", "explain_feature": least, "explain_row": "7"}
    data = web.get(f"/runs/{run_id}.json", params=chosen).json()["explain"]

    assert data["output"] == "virginica" and data["feature"] == least
    assert data["row"] == 7 and data["waterfall"]["row"] == 7
    assert data["dependence"]["feature"] == least
    assert data["waterfall"]["output_value"] != default["waterfall"]["output_value"]
    for bad in ({"explain_row": "99"}, {"explain_row": "x"}, {"explain_feature": "nope"}):
        response = web.get(f"/runs/{run_id}.json", params=bad)
        assert response.status_code == 400 and response.json()["ok"] is False


def test_page_draws_the_section_and_a_skipped_run_says_why(web, explained) -> None:
    page = web.get(f"/runs/{explained[1]['forest']}", params={"explain_row": "3"})
    assert page.status_code == 200
    for chart in (
        "explain-importance",
        "explain-beeswarm",
        "explain-dependence",
        "explain-waterfall",
    ):
        assert f'id="{chart}"' in page.text
    assert 'href="#explain"' in page.text

    skipped = web.get(f"/runs/{explained[1]['quantile']}")
    assert skipped.status_code == 200
    assert 'id="explain-skipped"' in skipped.text and "per-quantile" in skipped.text
    assert web.get(f"/runs/{explained[1]['quantile']}.json").json()["explain"] is None


def test_figures_are_built_from_the_data_alone() -> None:
    data = {
        "explain": {
            "summary": {"output_space": "log-odds"},
            "importance": {"yes": [["a", 0.5], ["b", 0.2]]},
            "beeswarm": {
                "output": "yes",
                "points": [
                    {"feature": "a", "shap": [0.1, -0.2], "colour": [0.0, 1.0]},
                    {"feature": "b", "shap": [0.3, 0.0], "colour": None},
                ],
            },
            "dependence": {
                "feature": "a",
                "output": "yes",
                "x": [1, 2],
                "shap": [0.1, -0.2],
                "categorical": False,
            },
            "waterfall": {
                "row": 0,
                "output": "yes",
                "base_value": -0.5,
                "output_value": 0.1,
                "steps": [
                    {"feature": "a", "value": 1, "shap": 0.4},
                    {"feature": "b", "value": "x", "shap": 0.2},
                ],
            },
        }
    }
    figures = charts.explain_figures(data)

    assert set(figures) == {
        "explain_importance",
        "explain_beeswarm",
        "explain_dependence",
        "explain_waterfall",
    }
    assert len(figures["explain_beeswarm"].data) == 2
    waterfall = figures["explain_waterfall"].data[0]
    assert list(waterfall.y) == ["base value", "a = 1", "b = x", "output"]
    assert np.isclose(sum(waterfall.x[:-1]), 0.1)
    assert charts.explain_figures({"explain": None}) == {}


def test_run_page_shows_fairness_by_group(client, seeded) -> None:
    """A run that logged fairness shows its per-group table and gap metrics."""
    import numpy as np

    import flowscope

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 200)
    y_pred = np.where(rng.random(200) < 0.8, y_true, 1 - y_true)
    group = rng.choice(["a", "b"], 200)
    with flowscope.start_run("fairness-page", settings=seeded) as run:
        run.log_fairness(y_true, y_pred, group)
    data = client.get(f"/runs/{run.run_id}.json").json()
    groups = {row[data["fairness"]["sensitive_feature"]] for row in data["fairness"]["by_group"]}
    assert groups == {"a", "b"}
    page = client.get(f"/runs/{run.run_id}")
    assert 'id="fairness-groups"' in page.text

"""Settings: defaults, the environment, flowscope.yaml, and errors that name the setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowscope.config import Settings, load_settings
from flowscope.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_are_what_mlflow_server_uses(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.tracking_uri == "sqlite:///mlflow.db"
    assert settings.artifacts_dir == tmp_path / "mlartifacts"
    assert settings.journal_dir == tmp_path / ".flowscope" / "journal"
    assert settings.experiment_name("churn") == "churn"
    assert settings.experiment_name("churn", "inference") == "churn-inference"


def test_mlflow_tracking_uri_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert load_settings().tracking_uri == "http://127.0.0.1:5000"


def test_yaml_file_and_environment_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flowscope.yaml").write_text(
        "tracking_uri: sqlite:///from-yaml.db\n"
        "flush_timeout: 5\n"
        "tracking: false\n"
        "experiments:\n  churn: churn-2026\n"
    )
    settings = load_settings()
    assert settings.tracking_uri == "sqlite:///from-yaml.db"
    assert settings.flush_timeout == 5
    assert settings.tracking is False
    assert settings.experiment_name("churn", "inference") == "churn-2026-inference"
    monkeypatch.setenv("FLOWSCOPE_FLUSH_TIMEOUT", "7")
    assert load_settings().flush_timeout == 7
    assert load_settings(flush_timeout=9).flush_timeout == 9


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("FLOWSCOPE_FLUSH_TIMEOUT", "soon", "flush_timeout"),
        ("FLOWSCOPE_FLUSH_TIMEOUT", "-1", "flush_timeout"),
        ("FLOWSCOPE_TRACKING", "perhaps", "tracking"),
        ("MLFLOW_TRACKING_URI", "ftp://somewhere", "tracking_uri"),
        ("FLOWSCOPE_EXPERIMENTS", "not json", "experiments"),
    ],
)
def test_bad_values_fail_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_unknown_key_and_broken_yaml(tmp_path: Path) -> None:
    config = tmp_path / "flowscope.yaml"
    config.write_text("trackin_uri: sqlite:///x.db\n")
    with pytest.raises(ConfigError, match="unknown setting 'trackin_uri'"):
        load_settings()
    config.write_text("tracking_uri: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read the settings"):
        load_settings()


def test_missing_config_file_named_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWSCOPE_CONFIG", "nowhere.yaml")
    with pytest.raises(ConfigError, match=r"nowhere\.yaml"):
        load_settings()


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"^\| `(\w+)` \|", README.read_text(), flags=re.MULTILINE))
    assert set(Settings.model_fields) <= documented, set(Settings.model_fields) - documented


def test_artifact_root_is_where_new_experiments_keep_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().default_artifact_root == (tmp_path / "mlartifacts").as_uri()
    monkeypatch.setenv("FLOWSCOPE_ARTIFACT_ROOT", "s3://models/team-a/")
    assert load_settings().default_artifact_root == "s3://models/team-a"


def test_artifact_root_must_be_a_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWSCOPE_ARTIFACT_ROOT", "models/team-a")
    with pytest.raises(ConfigError, match=r"artifact_root.*not a URI.*s3://BUCKET"):
        load_settings()

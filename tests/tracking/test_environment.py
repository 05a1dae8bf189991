"""Environment capture: package versions, the git state of a real repository, no git."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from flowscope.tracking.environment import (
    PACKAGES,
    capture_environment,
    git_state,
    source_tags,
)


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    command += ["-c", "commit.gpgsign=false", *args]
    return subprocess.run(
        command, cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the working directory, with git forbidden to look above it."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def repo(outside_git: Path) -> Path:
    _git(outside_git, "init", "-q", "-b", "main")
    (outside_git / "train.py").write_text("print('hello')\n")
    _git(outside_git, "add", "train.py")
    _git(outside_git, "commit", "-q", "-m", "first")
    return outside_git


def test_packages_are_read_from_metadata() -> None:
    environment = capture_environment()
    expected = {}
    for name in PACKAGES:
        try:
            expected[name] = version(name)
        except PackageNotFoundError:
            continue
    assert environment["packages"] == expected
    assert {"flowscope", "mlflow", "scikit-learn", "numpy", "pandas"} <= set(
        environment["packages"]
    )
    # versions come from metadata: capturing them imports none of the heavy packages
    probe = (
        "import sys; from flowscope.tracking.environment import capture_environment; "
        "capture_environment(); print(sorted({'shap', 'optuna', 'xgboost'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def test_python_platform_command_and_seeds() -> None:
    environment = capture_environment(seeds={"split": 3, "model": 7})
    assert environment["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert environment["python"]["implementation"] == "CPython"
    assert environment["platform"]["system"]
    assert environment["hostname"]
    assert environment["command"] == sys.argv
    assert environment["working_directory"] == os.getcwd()
    assert environment["seeds"] == {"split": 3, "model": 7}
    assert json.loads(json.dumps(environment)) == environment


def test_git_commit_branch_and_dirty_inside_a_repository(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    environment = capture_environment()
    assert environment["git"] == {"commit": head, "branch": "main", "dirty": False, "remote": None}
    tags = source_tags(environment)
    assert tags["mlflow.source.git.commit"] == head
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.name"]
    (repo / "train.py").write_text("print('changed')\n")
    assert capture_environment()["git"]["dirty"] is True
    (repo / "notes.txt").write_text("untracked files do not make the tree dirty\n")
    _git(repo, "checkout", "-q", "train.py")
    assert capture_environment()["git"]["dirty"] is False


def test_remote_url_is_kept_without_credentials(repo: Path) -> None:
    _git(repo, "remote", "add", "backup", "git@example.com:team/backup.git")
    assert git_state()["remote"] == "git@example.com:team/backup.git"  # type: ignore[index]
    _git(repo, "remote", "add", "origin", "https://user:s3cret@example.com/team/project.git")
    environment = capture_environment()
    assert environment["git"]["remote"] == "https://example.com/team/project.git"
    assert source_tags(environment)["mlflow.source.git.repoURL"] == (
        "https://example.com/team/project.git"
    )
    assert "s3cret" not in json.dumps(environment)


def test_repository_without_commits_has_no_commit(outside_git: Path) -> None:
    _git(outside_git, "init", "-q", "-b", "main")
    state = git_state()
    assert state is not None and state["commit"] is None and state["branch"] == "main"
    assert "mlflow.source.git.commit" not in source_tags(capture_environment())


def test_no_git_state_outside_a_repository(outside_git: Path) -> None:
    environment = capture_environment()
    assert "git" not in environment
    assert not any(tag.startswith("mlflow.source.git") for tag in source_tags(environment))


def test_no_git_binary_is_not_an_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = repo / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert "git" not in capture_environment()

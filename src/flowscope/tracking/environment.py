"""What a run ran on: Python, platform, package versions, the git commit and the seeds.

Captured at every ``start_run``, so it must be fast (a few milliseconds): package versions
come from installed metadata (importing shap or xgboost just to ask would take seconds),
and git is asked once, with a short timeout, for commit, branch and changes together.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PACKAGES = (
    "flowscope",
    "mlflow",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "numpy",
    "pandas",
    "scipy",
    "skops",
    "shap",
    "optuna",
)
GIT_TIMEOUT_S = 2.0


def capture_environment(seeds: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The environment of this process as a JSON-able dict: ``python`` (version,
    implementation, executable), ``platform``, ``hostname``, ``packages`` (the installed
    ones of :data:`PACKAGES`, name -> version), ``git`` (``commit``, ``branch``, ``dirty``,
    ``remote``; absent outside a git work tree or without git), ``command``
    (``sys.argv``), ``working_directory``, ``seeds`` and ``captured_at``.

    >>> capture_environment(seeds={"split": 0})["seeds"]
    {'split': 0}
    """
    environment: dict[str, Any] = {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "description": platform.platform(),
        },
        "hostname": socket.gethostname(),
        "packages": package_versions(),
        "command": list(sys.argv),
        "working_directory": os.getcwd(),
        "seeds": {str(name): int(value) for name, value in (seeds or {}).items()},
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    git = git_state()
    if git is not None:
        environment["git"] = git
    return environment


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` from package metadata; missing packages are left
    out. Nothing is imported."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def git_state(cwd: str | Path | None = None) -> dict[str, Any] | None:
    """Commit, branch, dirty flag (changes to tracked files) and remote URL of the git work
    tree holding ``cwd``; None outside one, without git, or if git is too slow."""
    status = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=no"], cwd)
    if status is None:
        return None
    commit = branch = None
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.removeprefix("# branch.oid ").strip()
        elif line.startswith("# branch.head "):
            branch = line.removeprefix("# branch.head ").strip()
        elif line and not line.startswith("#"):
            dirty = True
    state: dict[str, Any] = {
        # a repository without commits says "(initial)"; a detached HEAD "(detached)"
        "commit": commit if commit and not commit.startswith("(") else None,
        "branch": branch if branch and not branch.startswith("(") else None,
        "dirty": dirty,
    }
    remotes = _git(["config", "--get-regexp", r"^remote\..*\.url$"], cwd)
    state["remote"] = _pick_remote(remotes) if remotes else None
    return state


def _git(args: list[str], cwd: str | Path | None) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            # never wait for a credential or pager prompt
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"},
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it took too long
        return None
    return result.stdout if result.returncode == 0 else None


def _pick_remote(config: str) -> str | None:
    """The ``origin`` URL, else the first remote's, without any user name or token."""
    urls: dict[str, str] = {}
    for line in config.splitlines():
        key, _, value = line.partition(" ")
        urls[key.removeprefix("remote.").removesuffix(".url")] = value.strip()
    url = urls.get("origin") or next(iter(urls.values()), None)
    return _without_credentials(url) if url else None


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url  # scp-like "git@host:org/repo.git" carries no secret
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def source_tags(environment: Mapping[str, Any]) -> dict[str, str]:
    """MLflow's standard source tags (``mlflow.source.name``, ``mlflow.source.type``,
    ``mlflow.source.git.commit``, ``.branch``, ``.repoURL``) from a captured environment,
    those that are known, so the MLflow UI links a run to its code as for its own runs."""
    tags: dict[str, str] = {}
    command = environment.get("command") or []
    if command and command[0] and command[0] != "-c":
        script = Path(command[0])
        tags["mlflow.source.name"] = str(script.resolve()) if script.exists() else command[0]
        tags["mlflow.source.type"] = "LOCAL"
    git = environment.get("git") or {}
    for key, tag in (("commit", "commit"), ("branch", "branch"), ("remote", "repoURL")):
        if git.get(key):
            tags[f"mlflow.source.git.{tag}"] = str(git[key])
    return tags

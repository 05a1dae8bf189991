"""Where a proxied artifact URI lives under the server's destination: inside it, always."""

from __future__ import annotations

import pytest

from flowscope.server.artifacts import destination_uri


@pytest.mark.parametrize("destination", ["s3://bucket/artifacts", "/srv/mlartifacts"])
@pytest.mark.parametrize(
    ("proxied", "under"),
    [
        ("mlflow-artifacts:/4/abc/artifacts", "4/abc/artifacts"),
        ("mlflow-artifacts://server:5000/4/abc/artifacts/model", "4/abc/artifacts/model"),
        ("mlflow-artifacts:/../../etc/passwd", "etc/passwd"),
        ("mlflow-artifacts:/4/../../../x", "x"),
        ("mlflow-artifacts:/4/./abc//artifacts", "4/abc/artifacts"),
    ],
)
def test_a_proxied_uri_stays_under_the_destination(
    destination: str, proxied: str, under: str
) -> None:
    assert destination_uri(destination, proxied) == f"{destination}/{under}"


def test_the_bare_root_is_the_destination() -> None:
    assert destination_uri("s3://bucket/artifacts", "mlflow-artifacts:/") == "s3://bucket/artifacts"

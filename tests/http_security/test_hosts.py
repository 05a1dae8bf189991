"""The Host policy on its own: what each default answers and what it refuses."""

from __future__ import annotations

import pytest

from flowscope.http_security import HostPolicy


@pytest.mark.parametrize(
    ("bind", "host", "allowed"),
    [
        (None, "localhost", True),
        (None, "localhost:5050", True),
        (None, "127.0.0.1:8080", True),
        (None, "[::1]:8080", True),
        (None, "LOCALHOST:1", True),
        (None, "evil.example", False),
        (None, "evil.example:5050", False),
        (None, "localhost.evil.example", False),
        (None, "", False),
        (None, "10.0.0.5:5000", False),  # loopback only: an address it does not listen on
        ("192.168.1.20", "192.168.1.20:5000", True),
        ("192.168.1.20", "192.168.1.21:5000", False),
        ("mlflow.internal", "mlflow.internal:5000", True),
        ("::1", "[::1]:5000", True),
        ("0.0.0.0", "10.0.0.5:5000", True),  # every interface: any private address
        ("0.0.0.0", "172.20.0.3", True),
        ("0.0.0.0", "[fd00::5]:5000", True),
        ("0.0.0.0", "10.attacker.example", False),  # MLflow's "10.*" would let this in
        ("0.0.0.0", "8.8.8.8", False),
        ("0.0.0.0", "rebound.example:5000", False),
    ],
)
def test_the_default_answers_loopback_and_where_it_listens(
    bind: str | None, host: str, allowed: bool
) -> None:
    assert HostPolicy.for_app(None, bind).allows(host) is allowed


def test_configured_patterns_follow_mlflows_rules() -> None:
    policy = HostPolicy.for_app("mlflow.example.com,server:*,*.team.example", "127.0.0.1")
    assert policy.allows("mlflow.example.com")
    assert not policy.allows("mlflow.example.com:8443")  # a name without a port is exact
    assert policy.allows("server:5000")
    assert policy.allows("a.team.example")
    assert not policy.allows("a.team.example:443")  # the pattern has no port
    assert policy.allows("localhost:5000")  # loopback stays answered
    assert not policy.allows("evil.example")
    assert HostPolicy.for_app("*").allows_everything


def test_mlflow_gets_the_same_hosts_as_patterns() -> None:
    patterns = HostPolicy.for_app("server:5000", "0.0.0.0").mlflow_patterns().split(",")
    assert {"localhost", "localhost:*", "127.0.0.1:*", "[::1]", "[[]::1]:*"} <= set(patterns)
    assert {"server:5000", "10.*", "192.168.*", "172.16.*"} <= set(patterns)

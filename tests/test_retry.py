"""The backoff between delivery attempts: growing pauses, a cap, a reset after success."""

from __future__ import annotations

import threading

import pytest

from flowscope._retry import Backoff


def test_pauses_double_up_to_the_cap_and_start_again_after_a_success() -> None:
    pauses: list[float] = []
    backoff = Backoff(0.1, 1.0, sleep=pauses.append)
    for _ in range(6):
        backoff.pause()
    backoff.reset()
    backoff.pause()
    assert pauses == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 0.1])


def test_a_cap_below_the_first_pause_wins() -> None:
    pauses: list[float] = []
    backoff = Backoff(0.2, 0.05, sleep=pauses.append)
    backoff.pause()
    backoff.pause()
    assert pauses == [0.05, 0.05]


def test_a_stop_event_ends_a_pause_at_once() -> None:
    stop = threading.Event()
    stop.set()
    backoff = Backoff(3600.0, 3600.0, sleep=stop.wait)
    backoff.pause()  # returns: the event is set, so the hour is not waited
    assert backoff.delay == 3600.0


@pytest.mark.parametrize(("first", "cap"), [(0.0, 1.0), (0.1, 0.0), (-1.0, 1.0)])
def test_pauses_must_be_positive(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff pauses must be positive"):
        Backoff(first, cap)

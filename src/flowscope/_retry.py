"""Exponential backoff between attempts at something that may work later (a store that is
away, say): each pause twice the last, up to a cap, and back to the first after a success.

The pause goes through an injectable ``sleep``, so a loop can wait on a stop event
(``sleep=stop.wait``) and a test can record the pauses instead of taking them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Pauses of ``first``, ``2 * first``, ``4 * first`` ... seconds, never above ``cap``:

    >>> backoff = Backoff(0.1, 5.0)
    >>> while not delivered():  # doctest: +SKIP
    ...     backoff.pause()
    """

    def __init__(
        self, first: float, cap: float, *, sleep: Callable[[float], object] = time.sleep
    ) -> None:
        if first <= 0 or cap <= 0:
            raise ValueError(f"backoff pauses must be positive, not first={first}, cap={cap}")
        self.first = first
        self.cap = cap
        self.delay = min(first, cap)
        self._sleep = sleep

    def pause(self) -> None:
        """Wait the current pause, and make the next one longer (up to the cap)."""
        self._sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)

    def reset(self) -> None:
        """After a success: the next failure pauses ``first`` seconds again."""
        self.delay = min(self.first, self.cap)

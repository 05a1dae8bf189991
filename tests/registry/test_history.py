"""Rebuilding who held which alias when from the recorded decisions."""

from __future__ import annotations

from typing import Any

from flowscope.registry.history import alias_timeline


def decision(time: int, before: dict[str, int], after: dict[str, int], **extra: Any) -> dict:
    return {
        "time": time,
        "status": "FINISHED",
        "run_id": f"run{time}",
        "by": "me@host",
        "aliases_before": before,
        "aliases_after": after,
        "alias_reasons": {alias: f"why {alias} at {time}" for alias in after},
        **extra,
    }


def test_timeline_follows_promotions_and_notices_changes_made_outside() -> None:
    timeline = alias_timeline(
        [
            decision(1, {}, {"production": 2, "staging": 1}),
            decision(2, {"production": 2, "staging": 1}, {"production": 2, "staging": 1}),
            {"time": 3, "status": "FINISHED", "aliases_before": None, "aliases_after": None},
            decision(4, {"production": 2, "staging": 1}, {"production": 3}, status="FAILED"),
            # someone moved @production to v5 by hand between these two
            decision(5, {"production": 5, "staging": 1}, {"production": 6}),
        ]
    )
    assert [(s["version"], s["since"], s["until"]) for s in timeline["production"]] == [
        (2, 1, 5),
        (5, None, 5),
        (6, 5, None),
    ]
    assert timeline["production"][1]["reason"] == "set outside flowscope"
    assert timeline["production"][2]["reason"] == "why production at 5"
    assert [(s["version"], s["since"], s["until"]) for s in timeline["staging"]] == [(1, 1, 5)]

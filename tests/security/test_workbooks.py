"""XLSX uploads that attack the reader: zip bombs (a few megabytes that inflate to
gigabytes, a part that inflates far beyond its size, a directory that lies about it) and
XML entity expansion (billion laughs, an external entity, the declaration hidden where a
quick check does not look). Each route that reads a workbook answers a 400 naming the
problem, in bounded memory, and leaves nothing behind: no staged file, no data set, no
saved predictions."""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.security import workbooks
from tests.security.conftest import MODEL, Hostile, assert_refused, nothing_written

GIGABYTES = 3 * 1024**3
# Far below what inflating any of these would take.
MEMORY_HEADROOM_BYTES = 512 * 1024**2

ATTACKS: dict[str, tuple[Callable[[Hostile], bytes], tuple[str, ...]]] = {
    # what the message says, any of these words
    "bomb-gigabytes": (lambda _: workbooks.zip_bomb(GIGABYTES), ("zip bomb",)),
    "bomb-ratio": (lambda _: workbooks.zip_bomb(60 * 1024**2), ("zip bomb",)),
    "lying-directory": (
        lambda _: workbooks.lying_directory(200 * 1024**2),
        ("not a readable", "cannot read", "Bad CRC"),
    ),
    "billion-laughs": (lambda _: workbooks.billion_laughs(), ("document type",)),
    "external-entity": (
        lambda hostile: workbooks.external_entity(str(hostile.secret)),
        ("document type",),
    ),
    "hidden-laughs": (lambda _: workbooks.laughs_after_a_long_comment(), ("no element",)),
    "unnamed-part": (
        lambda _: workbooks.laughs_in_an_unnamed_part(),
        ("cannot read", "Entities", "entit"),
    ),
}
ROUTES = (
    "/api/datasets",
    "/workbench/upload",
    "/models/{name}/predict/batch",
    "/api/models/{name}/1/predict/batch",
)


@pytest.fixture(scope="module")
def built(hostile: Hostile) -> dict[str, bytes]:
    return {name: make(hostile) for name, (make, _) in ATTACKS.items()}


def _peak_memory() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("attack", ATTACKS)
def test_workbook_attack(
    dashboard: Any, hostile: Hostile, built: dict[str, bytes], attack: str, route: str
) -> None:
    path = route.replace("{name}", quote(MODEL, safe=""))
    if route.startswith("/models/"):
        path += ".json"  # the page's JSON twin: the error as data
    body = built[attack]
    peak = _peak_memory()
    with nothing_written(hostile):
        answer = dashboard.post(
            path,
            files={"file": ("book.xlsx", body, "application/zip")},
            headers={"accept": "application/json"},
        )
    assert _peak_memory() - peak < MEMORY_HEADROOM_BYTES
    assert_refused(answer, statuses=(400,))
    message = answer.json()["error"]
    words = ATTACKS[attack][1]
    assert any(word.lower() in message.lower() for word in words), message

"""Script in every user string a page renders, opened in real Chromium: run, experiment and
model names, descriptions, params, tags, metric keys, an uploaded data set's column names
and cells, a queued job, error pages and the report's offline HTML. Each payload shows as
text and never runs: ``window.__pwned`` stays unset, no dialog opens, no element carries an
event handler or a ``javascript:`` link."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from tests.security import payloads as p
from tests.security.conftest import FEATURE, LABELS, MODEL, UPLOAD_TARGET, Hostile

pytestmark = pytest.mark.browser

NAME = quote(MODEL, safe="")
# (page, the payloads it must show as text)
PAGES = {
    "experiments": ("/experiments", (p.SCRIPT,)),
    "runs": ("/experiments/{eid}", (p.SVG_BREAKOUT, p.ATTRIBUTE_BREAKOUT, p.JAVASCRIPT_URL)),
    "runs-filtered": (
        "/experiments/{eid}?" + urlencode({"filter": p.SCRIPT}),
        (p.SCRIPT,),
    ),
    "run": ("/runs/{run0}", (p.SVG_BREAKOUT, p.IMG, p.JAVASCRIPT_URL, FEATURE)),
    "plain-run": ("/runs/{plain}", (p.JAVASCRIPT_URL, p.SCRIPT, p.IMG, p.SVG_BREAKOUT)),
    "compare": ("/compare?runs={run0},{run1},{plain}&metric=accuracy", (p.SVG_BREAKOUT,)),
    "best": ("/experiments/{eid}/best?metric=accuracy", (p.SCRIPT,)),
    "report": ("/experiments/{eid}/report?metric=accuracy", (p.SVG_BREAKOUT,)),
    "models": ("/models", (MODEL, p.SCRIPT)),
    "model": (f"/models/{NAME}", (MODEL, p.SCRIPT)),
    "model-compare": (f"/models/{NAME}/compare?versions=1", ()),
    "model-history": (f"/models/{NAME}/history", (MODEL,)),
    "predict": (f"/models/{NAME}/predict", (MODEL, FEATURE, LABELS[0])),
    "inference": (f"/models/{NAME}/inference", (MODEL,)),
    "workbench": ("/workbench?dataset={dataset}", (p.SCRIPT, p.IMG, UPLOAD_TARGET)),
    "jobs": ("/jobs", ()),
    "job": ("/jobs/{job}", ()),
    "missing-run": ("/runs/" + quote(p.SCRIPT, safe=""), ()),
    "missing-model": ("/models/" + quote(p.SVG_BREAKOUT, safe=""), (p.SVG_BREAKOUT,)),
}

INERT = """() => ({
    pwned: window.__pwned,
    handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]
        .filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name)),
    links: [...document.querySelectorAll('[href],[src],[action],[formaction]')]
        .map(e => e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action')
             || e.getAttribute('formaction'))
        .filter(u => /^\\s*javascript:/i.test(u)),
})"""


@pytest.fixture
def tab(browser: Any, ui_server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=ui_server)
    opened = context.new_page()
    opened.dialogs = []
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    try:
        yield opened
    finally:
        context.close()


def assert_inert(tab: Any, shown: tuple[str, ...]) -> None:
    state = tab.evaluate(INERT)
    assert state["pwned"] is None, "a payload ran"
    assert not tab.dialogs, tab.dialogs
    assert not state["handlers"], state["handlers"]
    assert not state["links"], state["links"]
    text = tab.inner_text("body")
    for payload in shown:
        assert payload in text, f"{payload!r} is not shown as text"


@pytest.mark.parametrize("name", PAGES)
def test_page_keeps_payloads_inert(tab: Any, hostile: Hostile, name: str) -> None:
    path, shown = PAGES[name]
    url = path.format(
        eid=hostile.experiment_id,
        run0=hostile.run_ids[0],
        run1=hostile.run_ids[1],
        plain=hostile.plain_run_id,
        dataset=hostile.dataset_id,
        job=hostile.job_id,
    )
    answer = tab.goto(url, wait_until="networkidle")
    assert answer is not None and answer.status < 500
    assert_inert(tab, shown)


def test_offline_report_keeps_payloads_inert(tab: Any, hostile: Hostile, ui_server: str) -> None:
    """The report's self-contained HTML, opened from disk as a reader would."""
    answer = httpx.get(
        f"{ui_server}/experiments/{hostile.experiment_id}/report.html",
        params={"metric": "accuracy"},
        timeout=60,
    )
    assert answer.status_code == 200
    tab.set_content(answer.text, wait_until="load")
    assert_inert(tab, (p.SVG_BREAKOUT,))

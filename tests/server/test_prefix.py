"""The dashboard's absolute links moved under the server's ``/flowscope`` prefix."""

from __future__ import annotations

from flowscope.server.prefix import prefix_links


def test_dashboard_links_move_under_the_prefix() -> None:
    page = (
        b'<a href="/experiments/3">e</a><link href="/static/app.css">'
        b'<script src="/vendor/plotly.min.js"></script>'
        b'<form method="post" action="/jobs/7/cancel"></form>'
        b"<select hx-get='/workbench'></select>"
    )
    assert prefix_links(page, "/flowscope") == (
        b'<a href="/flowscope/experiments/3">e</a><link href="/flowscope/static/app.css">'
        b'<script src="/flowscope/vendor/plotly.min.js"></script>'
        b'<form method="post" action="/flowscope/jobs/7/cancel"></form>'
        b"<select hx-get='/flowscope/workbench'></select>"
    )


def test_links_elsewhere_are_left_alone() -> None:
    page = (
        b'<a href="/#/experiments/1/runs/abc">in MLflow</a>'  # MLflow's UI at the root
        b'<a href="//cdn.example/x.js">x</a><a href="https://mlflow.org/">docs</a>'
        b'<a href="?page=2">next</a><a href="/flowscope/experiments.json">JSON</a>'
        b'<a href="/flowscope?x=1">home</a><p>see /experiments for more</p>'
    )
    assert prefix_links(page, "/flowscope") == page


def test_a_path_that_only_starts_like_the_prefix_is_moved() -> None:
    assert prefix_links(b'<a href="/flowscopes">', "/flowscope") == (
        b'<a href="/flowscope/flowscopes">'
    )

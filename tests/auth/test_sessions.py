"""Browser sessions: a signed cookie that expires, refused when altered or signed with
another key, and a CSRF token bound to one session."""

from __future__ import annotations

from flowscope.auth.sessions import Sessions
from flowscope.web.guard import with_csrf_fields
from tests.moments import ManualClock


def test_a_session_cookie_holds_its_user_until_it_expires() -> None:
    clock = ManualClock()
    sessions = Sessions("k" * 32, hours=1, clock=clock)
    cookie, session = sessions.issue("alice")
    assert sessions.read(cookie) == session
    clock.now += 3599
    assert sessions.read(cookie) is not None
    clock.now += 1
    assert sessions.read(cookie) is None


def test_an_altered_or_foreign_cookie_is_no_session() -> None:
    sessions = Sessions("k" * 32, hours=1)
    cookie, _ = sessions.issue("alice")
    payload, _, signature = cookie.rpartition(".")
    assert sessions.read(payload + "." + signature[::-1]) is None
    forged, _ = Sessions("another key entirely", hours=1).issue("admin")
    assert sessions.read(forged) is None
    assert sessions.read("") is None
    assert sessions.read("not-a-cookie") is None


def test_a_csrf_token_belongs_to_one_session() -> None:
    sessions = Sessions("k" * 32, hours=1)
    _, mine = sessions.issue("alice")
    _, theirs = sessions.issue("alice")
    token = sessions.csrf_token(mine)
    assert sessions.csrf_matches(mine, token)
    assert not sessions.csrf_matches(theirs, token)
    assert not sessions.csrf_matches(mine, None)
    assert not sessions.csrf_matches(mine, "")


def test_every_posting_form_gets_the_token_as_its_first_field() -> None:
    page = (
        b'<form method="get" action="/x"><input name="a"></form>'
        b'<form method="post" action="/y" enctype="multipart/form-data"><input type="file"></form>'
        b"<FORM METHOD=POST action='/z'></FORM>"
    )
    out = with_csrf_fields(page, 'to"ken').decode()
    field = '<input type="hidden" name="csrf_token" value="to&quot;ken">'
    assert out.count(field) == 2
    assert 'enctype="multipart/form-data">' + field + '<input type="file">' in out
    assert '<form method="get" action="/x"><input name="a">' in out

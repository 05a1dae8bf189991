"""The OS user of a process whose UID has no passwd entry (a container's arbitrary UID)."""

from __future__ import annotations

import os
import pwd

import pytest

from flowscope.os_user import os_user

NAME_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")


def _uid_without_entry() -> int:
    uid = 54_321
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can take a UID with no passwd entry")
def test_a_uid_with_no_passwd_entry_has_no_user_name_instead_of_an_error() -> None:
    uid = _uid_without_entry()
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the child: that UID and no name in the environment, as in a container
        try:
            os.close(reading)
            for name in NAME_VARIABLES:
                os.environ.pop(name, None)
            os.setuid(uid)
            os.write(writing, repr(os_user()).encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as answer:
        said = answer.read().decode()
    os.waitpid(child, 0)
    assert said == "None"

"""Who may do what on ``flowscope server --auth``: MLflow's users and permissions (its
basic-auth store), flowscope's API tokens and browser sessions, and the permission each
route needs. See :mod:`flowscope.web.access` for the dashboard's rules."""

from flowscope.auth.access import Access, Forbidden
from flowscope.auth.admin import check_admin
from flowscope.auth.identity import Authenticator, Identity, NotCached, Unauthenticated
from flowscope.auth.services import AuthServices, open_auth
from flowscope.auth.sessions import Session, Sessions
from flowscope.auth.tokens import IssuedToken, TokenInfo, TokenRefused, TokenStore

__all__ = [
    "Access",
    "AuthServices",
    "Authenticator",
    "Forbidden",
    "Identity",
    "IssuedToken",
    "NotCached",
    "Session",
    "Sessions",
    "TokenInfo",
    "TokenRefused",
    "TokenStore",
    "Unauthenticated",
    "check_admin",
    "open_auth",
]

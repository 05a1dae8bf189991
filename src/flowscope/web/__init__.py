"""The dashboard: a FastAPI app whose every page has a JSON twin."""

from flowscope.web.app import create_app

__all__ = ["create_app"]

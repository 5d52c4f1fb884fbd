"""pykue on the web: Kue's JSON API, the dashboard and metrics (ASGI app factories)."""

from .api import create_app

__all__ = ["create_app"]

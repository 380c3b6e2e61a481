"""The ASGI app. FastAPI types stay inside this package."""

from tokenrelay.server.app import create_app

__all__ = ["create_app"]

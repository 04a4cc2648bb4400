"""HTTP: the native API, the API profiles and the dashboard, on one FastAPI app."""

from loadbay.api.app import create_app

__all__ = ["create_app"]

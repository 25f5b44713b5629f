"""The HTTP API: a thin Starlette layer over `relay.store` and `relay.core`."""

from relay.api.app import create_app

__all__ = ["create_app"]

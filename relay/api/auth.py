"""Bearer keys to tenants."""

from __future__ import annotations

import hashlib

from starlette.requests import Request

from relay.api.errors import ApiError
from relay.settings import ApiKey


class Tenants:
    """Looks keys up by their SHA-256, so the lookup's timing says nothing about a key."""

    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self._by_digest = {_digest(k.key): k.tenant for k in keys}

    def tenant_of(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "Send `Authorization: Bearer <key>`")
        tenant = self._by_digest.get(_digest(token.strip()))
        if tenant is None:
            raise ApiError(401, "unauthorized", "Unknown API key")
        return tenant


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()

"""The breaker's pure parts: which receiver a URL names, what one attempt says of it."""

from __future__ import annotations

import pytest

from relay.delivery.receivers import origin_of, verdict


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://hooks.example/a", "https://hooks.example:443"),
        ("https://HOOKS.example:443/b?x=1", "https://hooks.example:443"),
        ("http://hooks.example/a", "http://hooks.example:80"),
        ("http://hooks.example:8080/a", "http://hooks.example:8080"),
        ("https://hooks.example:8443", "https://hooks.example:8443"),
        ("HTTP://127.0.0.1:9000/x", "http://127.0.0.1:9000"),
        ("http://[::1]:9000/x", "http://[::1]:9000"),
        ("https://user:pw@hooks.example/x", "https://hooks.example:443"),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    ("status_code", "error", "expected"),
    [
        (200, None, "up"),
        (204, None, "up"),
        (302, None, "up"),
        (400, None, "up"),
        (404, None, "up"),
        (410, None, "up"),
        (408, None, "down"),
        (429, None, "down"),
        (500, None, "down"),
        (503, None, "down"),
        (None, "timeout: no answer within 10 s", "down"),
        (None, "connect: cannot connect: refused", "down"),
        (None, "tls: certificate verify failed", "down"),
        (None, "protocol: ServerDisconnectedError", "down"),
        (None, "blocked: the address is not public", "none"),
        (None, None, "down"),
    ],
)
def test_verdict(status_code: int | None, error: str | None, expected: str) -> None:
    assert verdict(status_code, error) == expected

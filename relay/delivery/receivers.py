"""What the circuit breaker needs to know about one receiver and one attempt. Pure."""

from __future__ import annotations

from typing import Literal

from yarl import URL

Verdict = Literal["up", "down", "none"]

# Answers that say the receiver itself is in trouble, not this one request.
_DOWN_STATUSES = frozenset({408, 429})
# The guard refused the address: no receiver was reached, so it tells nothing of its health.
_NEUTRAL_ERRORS = frozenset({"blocked"})


def origin_of(url: str) -> str:
    """The receiver a webhook URL names: `scheme://host:port`, default ports made explicit,
    so `https://a.example/x` and `https://A.example:443/y` are one receiver."""
    parsed = URL(url)
    host = (parsed.host or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parsed.scheme.lower()}://{host}:{parsed.port or 0}"


def verdict(status_code: int | None, error: str | None) -> Verdict:
    """Whether one attempt says the receiver is up, down, or nothing about it.

    `error` is the sender's `"<kind>: <message>"`. Any HTTP answer below 500
    (a 404 or a 410 included) shows a receiver that is there and answering,
    except 408 and 429, which say it cannot take more now.
    """
    if status_code is None:
        kind = (error or "").partition(":")[0]
        return "none" if kind in _NEUTRAL_ERRORS else "down"
    if status_code >= 500 or status_code in _DOWN_STATUSES:
        return "down"
    return "up"

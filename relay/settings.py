"""Every setting of the relay, read from the environment once, in one place.

Each command parses the environment into one frozen `Settings` at start and
hands it down; nothing else reads `os.environ`. A missing or malformed value
raises `SettingsError` naming the variable, which the CLI turns into one line
on stderr and exit status 2.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from relay.core.schedule import PollPolicy

DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class ApiKey:
    tenant: str
    key: str


@dataclasses.dataclass(frozen=True)
class Settings:
    # Documented in the README's settings table; keep the two in step.
    redis_url: str = dataclasses.field(default="redis://localhost:6379/0", repr=False)
    upstream_url: str = "https://api.journeyapi.com"
    upstream_api_key: str | None = dataclasses.field(default=None, repr=False)
    upstream_rate: float = 50.0
    upstream_timeout: float = 10.0
    upstream_webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    api_keys: tuple[ApiKey, ...] = dataclasses.field(default=(), repr=False)
    webhook_secrets: tuple[bytes, ...] = dataclasses.field(default=(), repr=False)
    poll_min_interval: float = 5.0
    poll_max_interval: float = 120.0
    task_deadline: float = 3 * 3600.0
    failed_grace: float = 30.0
    unknown_task_limit: float = 300.0
    delivery_timeout: float = 10.0
    delivery_retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    allow_private_webhooks: bool = False
    retention: float = 7 * 86400.0
    poll_concurrency: int = 200
    delivery_concurrency: int = 200
    receiver_hold_after: int = 5  # failed attempts in a row that hold a receiver; 0: never
    # Tracked (registered, not yet final) tasks one tenant may have at once: enough for
    # a busy client (a day of tasks at one a second ends long before it), small
    # enough that one tenant cannot fill Redis or the upstream rate alone.
    tenant_max_tasks: int = 10_000
    log_level: str = "INFO"

    @property
    def redis_url_redacted(self) -> str:
        """The Redis URL with its password masked, for logs and error lines."""
        parts = urlsplit(self.redis_url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            return urlunsplit(parts._replace(netloc=netloc))
        return self.redis_url

    def poll_policy(self) -> PollPolicy:
        return PollPolicy(
            min_interval=self.poll_min_interval,
            max_interval=self.poll_max_interval,
            failed_grace=self.failed_grace,
            not_found_limit=self.unknown_task_limit,
        )

    @property
    def poll_lease(self) -> float:
        """How long a claimed poll is held before another worker may take it.

        Longer than one upstream call (which its timeout bounds) and the write
        after it, so a live worker keeps its claim; short enough that a killed
        worker's tasks come back within seconds. A claim lost all the same
        only costs one more poll: the write-back is refused, nothing doubles.
        """
        return self.upstream_timeout + 2.0

    @property
    def delivery_lease(self) -> float:
        return self.delivery_timeout + 5.0


# --- parsers: each takes the raw string and returns the value or raises ValueError


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be zero or a positive number of seconds")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be 0 or 1")


def _redis_url(raw: str) -> str:
    from relay.store.redis import CLUSTER_SCHEMES, parse_cluster, parse_sentinel

    if urlsplit(raw).scheme not in {"redis", "rediss", "unix", "redis+sentinel", *CLUSTER_SCHEMES}:
        raise ValueError(
            "must start with redis://, rediss://, unix://, redis+sentinel://,"
            " redis+cluster:// or rediss+cluster://"
        )
    # Each raises ValueError for a malformed URL of its kind.
    parse_sentinel(raw)
    parse_cluster(raw)
    return raw


def _http_base_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    return raw.rstrip("/")


def _non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


TENANT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
MIN_KEY_LENGTH = 16


def _api_key_entry(item: str) -> ApiKey:
    """One `key` or `tenant=key` entry; raises ValueError without repeating the key."""
    left, sep, right = item.partition("=")
    # Base64 keys end in `=` padding: a split that leaves only padding is no split.
    if sep and TENANT_NAME.fullmatch(left.strip()) and right.strip("= \t"):
        tenant, key = left.strip(), right.strip()
    else:
        # A bare key is a tenant of its own; the tenant name must not reveal it.
        tenant, key = "key-" + _fingerprint(item), item
    if len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
        raise ValueError(
            "is neither `key` nor `tenant=key` (a tenant name of letters, digits, `_`, `.`"
            f" and `-`; a key of at least {MIN_KEY_LENGTH} characters, no whitespace or commas)"
        )
    return ApiKey(tenant=tenant, key=key)


def _api_keys(raw: str) -> tuple[ApiKey, ...]:
    keys: list[ApiKey] = []
    first_seen: dict[str, int] = {}
    for position, item in enumerate(raw.split(","), start=1):
        item = item.strip()
        if not item:
            continue  # a trailing comma
        try:
            entry = _api_key_entry(item)
        except ValueError as exc:
            raise ValueError(f"entry {position}: {exc}") from None
        if entry.key in first_seen:
            raise ValueError(f"entries {first_seen[entry.key]} and {position} hold the same key")
        first_seen[entry.key] = position
        keys.append(entry)
    if not keys:
        raise ValueError("must list at least one key")
    return tuple(keys)


def _fingerprint(secret: str) -> str:
    import hashlib

    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _webhook_secrets(raw: str) -> tuple[bytes, ...]:
    secrets: list[bytes] = []
    for item in raw.split():
        if not item.startswith("whsec_"):
            raise ValueError("each secret must look like whsec_<base64>")
        try:
            decoded = base64.b64decode(item.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a secret is not valid base64 after whsec_") from None
        if len(decoded) < 16:
            raise ValueError("each secret must decode to at least 16 bytes")
        secrets.append(decoded)
    if not secrets:
        raise ValueError("must hold at least one whsec_ secret")
    return tuple(secrets)


def _retry_schedule(raw: str) -> tuple[float, ...]:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    return tuple(_non_negative_float(item) for item in items)


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


# variable -> (Settings field, parser)
_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "RELAY_REDIS_URL": ("redis_url", _redis_url),
    "RELAY_UPSTREAM_URL": ("upstream_url", _http_base_url),
    "RELAY_UPSTREAM_API_KEY": ("upstream_api_key", _non_empty),
    "RELAY_UPSTREAM_RATE": ("upstream_rate", _positive_float),
    "RELAY_UPSTREAM_TIMEOUT": ("upstream_timeout", _positive_float),
    "RELAY_UPSTREAM_WEBHOOK_SECRET": ("upstream_webhook_secret", _non_empty),
    "RELAY_API_KEYS": ("api_keys", _api_keys),
    "RELAY_WEBHOOK_SECRET": ("webhook_secrets", _webhook_secrets),
    "RELAY_POLL_MIN_INTERVAL": ("poll_min_interval", _positive_float),
    "RELAY_POLL_MAX_INTERVAL": ("poll_max_interval", _positive_float),
    "RELAY_TASK_DEADLINE": ("task_deadline", _positive_float),
    "RELAY_FAILED_GRACE": ("failed_grace", _non_negative_float),
    "RELAY_UNKNOWN_TASK_LIMIT": ("unknown_task_limit", _non_negative_float),
    "RELAY_DELIVERY_TIMEOUT": ("delivery_timeout", _positive_float),
    "RELAY_DELIVERY_RETRY_SCHEDULE": ("delivery_retry_schedule", _retry_schedule),
    "RELAY_ALLOW_PRIVATE_WEBHOOKS": ("allow_private_webhooks", _bool),
    "RELAY_RETENTION": ("retention", _positive_float),
    "RELAY_POLL_CONCURRENCY": ("poll_concurrency", _positive_int),
    "RELAY_DELIVERY_CONCURRENCY": ("delivery_concurrency", _positive_int),
    "RELAY_RECEIVER_HOLD_AFTER": ("receiver_hold_after", _non_negative_int),
    "RELAY_TENANT_MAX_TASKS": ("tenant_max_tasks", _positive_int),
    "RELAY_LOG_LEVEL": ("log_level", _log_level),
}

_FIELD_TO_VARIABLE = {field: var for var, (field, _) in _VARIABLES.items()}

REQUIRED_BY = {
    "api": ("api_keys",),
    "worker": ("upstream_api_key", "webhook_secrets"),
}


def load_settings(
    environ: Mapping[str, str] | None = None, *, require: tuple[str, ...] = ()
) -> Settings:
    """Parse the environment; `require` names the fields this command cannot do without."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for variable, (field, parse) in _VARIABLES.items():
        raw = env.get(variable)
        if raw is None:
            continue
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable}: {exc}") from None
    settings = Settings(**values)
    for field in require:
        if not getattr(settings, field):
            raise SettingsError(f"{_FIELD_TO_VARIABLE[field]}: is required and not set")
    if settings.poll_max_interval < settings.poll_min_interval:
        raise SettingsError(
            "RELAY_POLL_MAX_INTERVAL: must not be less than RELAY_POLL_MIN_INTERVAL"
        )
    return settings


def variable_for(field: str) -> str:
    return _FIELD_TO_VARIABLE[field]

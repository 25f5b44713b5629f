"""`load_settings`: the contract's defaults, each malformed value named, what each command needs."""

from __future__ import annotations

import base64
import re
import secrets

import pytest

from relay.settings import REQUIRED_BY, Settings, SettingsError, load_settings

SECRET_A = base64.b64encode(b"first-secret-0123456789").decode()
SECRET_B = base64.b64encode(b"second-secret-abcdefghij").decode()
WHSEC_A = "whsec_" + SECRET_A
WHSEC_B = "whsec_" + SECRET_B
K1 = "first-client-key-0001"


def test_defaults_are_the_contracts() -> None:
    settings = load_settings({})
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.upstream_url == "https://api.journeyapi.com"
    assert settings.poll_min_interval == 5
    assert settings.delivery_timeout == 10
    assert settings.delivery_retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert settings.allow_private_webhooks is False
    assert settings.upstream_webhook_secret is None
    assert settings.upstream_api_key is None
    assert settings.api_keys == ()
    assert settings.webhook_secrets == ()
    # the project's own choices must at least be sane
    assert settings.poll_max_interval >= settings.poll_min_interval
    assert settings.task_deadline > 0
    assert settings.failed_grace >= 0
    assert settings.upstream_rate > 0


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.redis_url = "redis://elsewhere"  # type: ignore[misc]


def test_other_variables_are_ignored() -> None:
    assert load_settings({"PATH": "/bin", "REDIS_URL": "nonsense"}) == load_settings({})


@pytest.mark.parametrize(
    ("variable", "raw", "field", "expected"),
    [
        ("RELAY_POLL_MIN_INTERVAL", "0.05", "poll_min_interval", 0.05),
        ("RELAY_POLL_MAX_INTERVAL", "5.5", "poll_max_interval", 5.5),
        ("RELAY_TASK_DEADLINE", "0.4", "task_deadline", 0.4),
        ("RELAY_FAILED_GRACE", "0.2", "failed_grace", 0.2),
        ("RELAY_FAILED_GRACE", "0", "failed_grace", 0.0),
        ("RELAY_DELIVERY_TIMEOUT", "0.75", "delivery_timeout", 0.75),
        (
            "RELAY_DELIVERY_RETRY_SCHEDULE",
            "0.05,0.5, 1.5",
            "delivery_retry_schedule",
            (0.05, 0.5, 1.5),
        ),
        ("RELAY_DELIVERY_RETRY_SCHEDULE", "1", "delivery_retry_schedule", (1.0,)),
        ("RELAY_UPSTREAM_RATE", "0.5", "upstream_rate", 0.5),
        ("RELAY_UPSTREAM_TIMEOUT", "1.5", "upstream_timeout", 1.5),
        ("RELAY_POLL_MIN_INTERVAL", "1e-2", "poll_min_interval", 0.01),
        ("RELAY_POLL_MIN_INTERVAL", " 2 ", "poll_min_interval", 2.0),
    ],
)
def test_durations_accept_fractions(variable: str, raw: str, field: str, expected: object) -> None:
    assert getattr(load_settings({variable: raw}), field) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("0", False), ("true", True), ("false", False), ("yes", True), ("no", False)],
)
def test_allow_private_webhooks(raw: str, expected: bool) -> None:
    assert load_settings({"RELAY_ALLOW_PRIVATE_WEBHOOKS": raw}).allow_private_webhooks is expected


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://:password@redis.internal:6380/2",
        "rediss://redis.example.com:6380/0",
        "unix:///var/run/redis/redis.sock",
    ],
)
def test_redis_urls_accepted(url: str) -> None:
    assert load_settings({"RELAY_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://api.journeyapi.com", "https://api.journeyapi.com"),
        ("http://127.0.0.1:8090", "http://127.0.0.1:8090"),
        ("https://proxy.example.com/journey/", "https://proxy.example.com/journey"),
    ],
)
def test_upstream_urls_accepted(raw: str, expected: str) -> None:
    assert load_settings({"RELAY_UPSTREAM_URL": raw}).upstream_url == expected


DURATIONS = [
    "RELAY_POLL_MIN_INTERVAL",
    "RELAY_POLL_MAX_INTERVAL",
    "RELAY_TASK_DEADLINE",
    "RELAY_DELIVERY_TIMEOUT",
    "RELAY_UPSTREAM_TIMEOUT",
    "RELAY_UPSTREAM_RATE",
    "RELAY_RETENTION",
]
BAD_POSITIVE = [
    "0",
    "-1",
    "-0.5",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e999",
    "abc",
    "",
    "5s",
]

MALFORMED: list[tuple[str, str]] = [
    *[(variable, raw) for variable in DURATIONS for raw in BAD_POSITIVE],
    *[
        ("RELAY_FAILED_GRACE", raw)
        for raw in ["-1", "nan", "inf", "1e999", "abc", "", "30 seconds"]
    ],
    *[
        ("RELAY_DELIVERY_RETRY_SCHEDULE", raw)
        for raw in ["5,-1", "5,abc", "5,nan", "inf", "5;300", "5 300", "1e999"]
    ],
    ("RELAY_REDIS_URL", "http://localhost:6379"),
    ("RELAY_REDIS_URL", "localhost:6379"),
    ("RELAY_REDIS_URL", "mysql://localhost/db"),
    ("RELAY_REDIS_URL", ""),
    ("RELAY_UPSTREAM_URL", "api.journeyapi.com"),
    ("RELAY_UPSTREAM_URL", "/api/v1"),
    ("RELAY_UPSTREAM_URL", "ftp://api.journeyapi.com"),
    ("RELAY_UPSTREAM_URL", "https://"),
    ("RELAY_UPSTREAM_URL", ""),
    ("RELAY_WEBHOOK_SECRET", SECRET_A),
    ("RELAY_WEBHOOK_SECRET", "whsec_!!!not-base64!!!"),
    ("RELAY_WEBHOOK_SECRET", "whsec_" + SECRET_A[:-1]),
    ("RELAY_WEBHOOK_SECRET", "whsec_" + base64.b64encode(b"too-short").decode()),
    ("RELAY_WEBHOOK_SECRET", "whsec_"),
    ("RELAY_WEBHOOK_SECRET", ""),
    ("RELAY_WEBHOOK_SECRET", "   "),
    ("RELAY_WEBHOOK_SECRET", f"{WHSEC_A} not-a-secret"),
    ("RELAY_WEBHOOK_SECRET", f"{WHSEC_A},{WHSEC_B}"),
    ("RELAY_API_KEYS", ""),
    ("RELAY_API_KEYS", " "),
    ("RELAY_API_KEYS", ","),
    ("RELAY_API_KEYS", "=key"),
    ("RELAY_API_KEYS", "tenant="),
    ("RELAY_API_KEYS", f"alpha={K1},=k2"),
    ("RELAY_API_KEYS", f"alpha={K1},beta={K1}"),
    ("RELAY_API_KEYS", f"alpha={K1},alpha={K1}"),
    ("RELAY_API_KEYS", f"{K1},{K1}"),
    ("RELAY_API_KEYS", f"{K1},alpha={K1}"),
    ("RELAY_UPSTREAM_API_KEY", ""),
    ("RELAY_UPSTREAM_API_KEY", "   "),
    ("RELAY_UPSTREAM_WEBHOOK_SECRET", ""),
    ("RELAY_ALLOW_PRIVATE_WEBHOOKS", "maybe"),
    ("RELAY_ALLOW_PRIVATE_WEBHOOKS", "2"),
    ("RELAY_POLL_CONCURRENCY", "0"),
    ("RELAY_POLL_CONCURRENCY", "1.5"),
    ("RELAY_DELIVERY_CONCURRENCY", "-3"),
    ("RELAY_LOG_LEVEL", "LOUD"),
]


@pytest.mark.parametrize(("variable", "raw"), MALFORMED)
def test_a_malformed_value_is_named(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: raw})
    message = str(caught.value)
    assert message.startswith(variable), message
    assert "\n" not in message, "one line"


@pytest.mark.parametrize(
    "env",
    [
        {"RELAY_POLL_MIN_INTERVAL": "10", "RELAY_POLL_MAX_INTERVAL": "5"},
        {"RELAY_POLL_MAX_INTERVAL": "1"},  # below the default minimum of 5
        {"RELAY_POLL_MIN_INTERVAL": "200"},  # above the default maximum
    ],
)
def test_max_interval_below_min_interval_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(("RELAY_POLL_MAX_INTERVAL", "RELAY_POLL_MIN_INTERVAL"))


def test_equal_min_and_max_intervals_are_fine() -> None:
    settings = load_settings({"RELAY_POLL_MIN_INTERVAL": "2", "RELAY_POLL_MAX_INTERVAL": "2"})
    assert settings.poll_min_interval == settings.poll_max_interval == 2


def test_the_secret_of_a_bad_value_is_not_repeated_in_the_error() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"RELAY_WEBHOOK_SECRET": "whsec_" + SECRET_A + "!"})
    assert SECRET_A not in str(caught.value)


# --- what each command needs -----------------------------------------------------------

COMPLETE = {
    "RELAY_API_KEYS": "alpha=key-alpha-0123456789",
    "RELAY_UPSTREAM_API_KEY": "upstream-key",
    "RELAY_WEBHOOK_SECRET": WHSEC_A,
}


def test_required_by_names_each_commands_needs() -> None:
    assert set(REQUIRED_BY["api"]) == {"api_keys"}
    assert set(REQUIRED_BY["worker"]) == {"upstream_api_key", "webhook_secrets"}


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("api", "RELAY_API_KEYS"),
        ("worker", "RELAY_UPSTREAM_API_KEY"),
        ("worker", "RELAY_WEBHOOK_SECRET"),
    ],
)
def test_a_missing_required_setting_is_named(command: str, missing: str) -> None:
    env = {k: v for k, v in COMPLETE.items() if k != missing}
    with pytest.raises(SettingsError) as caught:
        load_settings(env, require=REQUIRED_BY[command])
    assert str(caught.value).startswith(missing), str(caught.value)


@pytest.mark.parametrize("command", ["api", "worker"])
def test_nothing_else_is_required(command: str) -> None:
    needed = {
        "api": ["RELAY_API_KEYS"],
        "worker": ["RELAY_UPSTREAM_API_KEY", "RELAY_WEBHOOK_SECRET"],
    }
    env = {k: COMPLETE[k] for k in needed[command]}
    assert isinstance(load_settings(env, require=REQUIRED_BY[command]), Settings)


def test_without_require_nothing_is_required() -> None:
    assert isinstance(load_settings({}), Settings)


def test_a_malformed_value_wins_over_a_missing_one() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"RELAY_POLL_MIN_INTERVAL": "soon"}, require=REQUIRED_BY["worker"])
    assert str(caught.value).startswith("RELAY_POLL_MIN_INTERVAL")


# --- api keys and secrets ----------------------------------------------------------------


def tenants(raw: str) -> dict[str, str]:
    """key -> tenant"""
    return {k.key: k.tenant for k in load_settings({"RELAY_API_KEYS": raw}).api_keys}


def test_tenant_equals_key() -> None:
    assert tenants("alpha=key-a-0123456789ab,beta=key-b-0123456789ab") == {
        "key-a-0123456789ab": "alpha",
        "key-b-0123456789ab": "beta",
    }


def test_two_keys_naming_the_same_tenant_share_it() -> None:
    found = tenants("alpha=old-key-0123456789,alpha=new-key-0123456789")
    assert found == {"old-key-0123456789": "alpha", "new-key-0123456789": "alpha"}


def test_a_bare_key_is_a_tenant_of_its_own() -> None:
    one, two, three = "key-one-0123456789", "key-two-0123456789", "key-three-012345678"
    found = tenants(f"{one},{two},alpha={three}")
    assert set(found) == {one, two, three}
    assert found[three] == "alpha"
    assert len({found[one], found[two], "alpha"}) == 3
    assert one not in found[one], "a tenant name must not reveal its key"
    # the same bare key always maps to the same tenant (tasks survive a restart)
    assert tenants(one)[one] == found[one]


def test_api_keys_are_trimmed_and_empty_items_skipped() -> None:
    raw = " alpha = key-a-0123456789ab , , beta=key-b-0123456789ab ,"
    assert tenants(raw) == {"key-a-0123456789ab": "alpha", "key-b-0123456789ab": "beta"}


# One entry of RELAY_API_KEYS -> (tenant, key); a tenant of None is the bare key's own.
ENTRIES = [
    pytest.param("alpha=abc=def-0123456789", "alpha", "abc=def-0123456789", id="key-with-equals"),
    pytest.param("a.b_c-D9=0123456789abcdef", "a.b_c-D9", "0123456789abcdef", id="tenant-chars"),
    pytest.param("t=0123456789abcdef", "t", "0123456789abcdef", id="one-letter-tenant"),
    # `openssl rand -base64 18` and `-base64 16`: `=` padding, or `+`/`/` before any `=`
    pytest.param("q4nWvT9CDa0N4gr1Ye3x8A==", None, "q4nWvT9CDa0N4gr1Ye3x8A==", id="b64-padding"),
    pytest.param("Zm9vYmFyYmF6cXV4cXV1eA=", None, "Zm9vYmFyYmF6cXV4cXV1eA=", id="b64-one-pad"),
    pytest.param("ab+/cdEFgh12=ijKL34==", None, "ab+/cdEFgh12=ijKL34==", id="b64-plus-slash"),
    pytest.param("my:tenant=0123456789abcdef", None, "my:tenant=0123456789abcdef", id="odd-left"),
    pytest.param("=0123456789abcdef", None, "=0123456789abcdef", id="empty-left"),
    pytest.param("0123456789abcdef", None, "0123456789abcdef", id="bare-16"),
    pytest.param("dev_" + "x" * 24, None, "dev_" + "x" * 24, id="relay-dev-style"),
]


@pytest.mark.parametrize(("entry", "tenant", "key"), ENTRIES)
def test_an_entry_splits_only_on_a_valid_tenant_name(
    entry: str, tenant: str | None, key: str
) -> None:
    (parsed,) = load_settings({"RELAY_API_KEYS": entry}).api_keys
    assert parsed.key == key
    if tenant is None:
        assert parsed.tenant.startswith("key-") and key not in parsed.tenant
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", parsed.tenant)
    else:
        assert parsed.tenant == tenant


# RELAY_API_KEYS -> the position its one-line error names
BAD_KEYS = [
    pytest.param("alpha=short", 1, id="short-key"),
    pytest.param("alpha=0123456789abcde", 1, id="15-chars"),
    pytest.param("0123456789abcde", 1, id="bare-15-chars"),
    pytest.param(f"{K1},beta=tiny", 2, id="second-entry"),
    pytest.param(f"{K1}, ,my tenant=0123456789abcdef", 3, id="space-in-tenant"),
    pytest.param("alpha=0123456789 abcdef", 1, id="space-in-key"),
    pytest.param("alpha=0123456789\tabcdef", 1, id="tab-in-key"),
    pytest.param("alpha==", 1, id="only-padding"),
    pytest.param(f"alpha={K1},beta={K1}", 2, id="same-key-twice"),
    pytest.param(f"{K1},x,{K1}", 2, id="first-bad-entry-wins"),
]


@pytest.mark.parametrize(("raw", "position"), BAD_KEYS)
def test_a_bad_key_entry_is_named_by_position_never_by_key(raw: str, position: int) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"RELAY_API_KEYS": raw})
    message = str(caught.value)
    assert message.startswith("RELAY_API_KEYS: entr"), message
    assert f" {position}" in message.split(":")[1], message
    assert "\n" not in message
    for entry in raw.split(","):
        for part in entry.split("="):
            if len(part.strip()) >= 4:
                assert part.strip() not in message, message


def test_what_relay_dev_generates_is_a_valid_key() -> None:
    key = "dev_" + secrets.token_urlsafe(18)
    assert tenants(f"dev={key}") == {key: "dev"}


@pytest.mark.parametrize(
    "raw", [f"{WHSEC_A} {WHSEC_B}", f"  {WHSEC_A}   {WHSEC_B} ", f"{WHSEC_A}\t{WHSEC_B}"]
)
def test_several_webhook_secrets(raw: str) -> None:
    secrets = load_settings({"RELAY_WEBHOOK_SECRET": raw}).webhook_secrets
    assert secrets == (b"first-secret-0123456789", b"second-secret-abcdefghij")


def test_one_webhook_secret() -> None:
    assert load_settings({"RELAY_WEBHOOK_SECRET": WHSEC_A}).webhook_secrets == (
        b"first-secret-0123456789",
    )


def test_secrets_and_keys_never_appear_in_repr() -> None:
    settings = load_settings(
        {
            "RELAY_API_KEYS": "alpha=client-key-one-0001,client-key-two-0002",
            "RELAY_WEBHOOK_SECRET": f"{WHSEC_A} {WHSEC_B}",
            "RELAY_UPSTREAM_API_KEY": "upstream-key-xyz",
            "RELAY_UPSTREAM_WEBHOOK_SECRET": "upstream-hook-secret-xyz",
        }
    )
    shown = repr(settings) + str(settings)
    for secret in [
        "client-key-one",
        "client-key-two",
        SECRET_A,
        SECRET_B,
        "first-secret",
        "second-secret",
        "upstream-key-xyz",
        "upstream-hook-secret-xyz",
    ]:
        assert secret not in shown, secret


def test_the_redis_password_never_appears_in_repr() -> None:
    settings = load_settings({"RELAY_REDIS_URL": "redis://:redis-pass-xyz@redis.internal:6379/0"})
    assert "redis-pass-xyz" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:7000",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002/",
        "redis+cluster://:s3cret@redis-0.redis:6379,redis-1.redis:6379",
        "redis+cluster://relay:s3cret@[::1]:7000/",
        "rediss+cluster://cluster.example.com:6380",
    ],
)
def test_cluster_urls_accepted(url: str) -> None:
    assert load_settings({"RELAY_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://", "each seed node must be host:port"),
        ("redis+cluster:///", "each seed node must be host:port"),
        ("redis+cluster://127.0.0.1", "each seed node must be host:port"),
        ("redis+cluster://127.0.0.1:7000,", "each seed node must be host:port"),
        ("redis+cluster://127.0.0.1:7000,127.0.0.1", "each seed node must be host:port"),
        ("redis+cluster://127.0.0.1:port", "each seed node must be host:port"),
        ("redis+cluster://127.0.0.1:-1", "each seed node must be host:port"),
        ("redis+cluster://127.0.0.1:70000", "each seed node must be host:port"),
        ("redis+cluster://:pw@:7000", "each seed node must be host:port"),
        ("redis+cluster://127.0.0.1:7000/0", "takes no path"),
        ("rediss+cluster://127.0.0.1:7000/relay", "takes no path"),
        ("redis+cluster://127.0.0.1:7000?ssl_cert_reqs=none", "nothing after the seed nodes"),
        ("redis+clusters://127.0.0.1:7000", "must start with"),
    ],
)
def test_malformed_cluster_urls_are_refused_naming_the_setting(url: str, says: str) -> None:
    with pytest.raises(SettingsError, match=rf"^RELAY_REDIS_URL: .*{says}"):
        load_settings({"RELAY_REDIS_URL": url})


def test_a_cluster_password_is_masked_in_logs_and_repr() -> None:
    settings = load_settings({"RELAY_REDIS_URL": "redis+cluster://:pw-xyz@h1:7000,h2:7000/"})
    assert "pw-xyz" not in repr(settings)
    assert settings.redis_url_redacted == "redis+cluster://:***@h1:7000,h2:7000/"

"""`load_settings`: the contract's defaults, each malformed value named, what each command needs."""

from __future__ import annotations

import base64

import pytest

from relay.settings import REQUIRED_BY, Settings, SettingsError, load_settings

SECRET_A = base64.b64encode(b"first-secret-0123456789").decode()
SECRET_B = base64.b64encode(b"second-secret-abcdefghij").decode()
WHSEC_A = "whsec_" + SECRET_A
WHSEC_B = "whsec_" + SECRET_B


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
    ("RELAY_API_KEYS", "alpha=k1,=k2"),
    ("RELAY_API_KEYS", "alpha=k1,beta=k1"),
    ("RELAY_API_KEYS", "alpha=k1,alpha=k1"),
    ("RELAY_API_KEYS", "k1,k1"),
    ("RELAY_API_KEYS", "k1,alpha=k1"),
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
    "RELAY_API_KEYS": "alpha=key-alpha",
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
    assert tenants("alpha=key-a,beta=key-b") == {"key-a": "alpha", "key-b": "beta"}


def test_two_keys_naming_the_same_tenant_share_it() -> None:
    assert tenants("alpha=old-key,alpha=new-key") == {"old-key": "alpha", "new-key": "alpha"}


def test_a_bare_key_is_a_tenant_of_its_own() -> None:
    found = tenants("key-one,key-two,alpha=key-three")
    assert set(found) == {"key-one", "key-two", "key-three"}
    assert found["key-three"] == "alpha"
    assert len({found["key-one"], found["key-two"], "alpha"}) == 3
    assert "key-one" not in found["key-one"], "a tenant name must not reveal its key"
    # the same bare key always maps to the same tenant (tasks survive a restart)
    assert tenants("key-one")["key-one"] == found["key-one"]


def test_api_keys_are_trimmed_and_empty_items_skipped() -> None:
    assert tenants(" alpha = key-a , , beta=key-b ,") == {"key-a": "alpha", "key-b": "beta"}


def test_a_key_may_contain_an_equals_sign_after_the_tenant() -> None:
    assert tenants("alpha=abc=def") == {"abc=def": "alpha"}


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
            "RELAY_API_KEYS": "alpha=client-key-one,client-key-two",
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

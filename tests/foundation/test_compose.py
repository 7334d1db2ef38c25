"""docker-compose.yml is a valid Compose file that starts what the scripts start.

Docker is not available here, so the file is checked rather than run: against the Compose
Specification's JSON schema (vendored in tests/fixtures/compose-spec/, see its README), and
against the scripts that start the same stack as processes (scripts/localstack.py,
scripts/deployment.py, scripts/processes.py, behind scripts/stack and scripts/demo): every
process they start is a Compose service running the same module, listening on the port the
services' settings (or the simulators' config) default to, with every environment variable the
scripts set; and every variable the file sets is one the settings read.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import json
import re
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from scripts import deployment, processes
from scripts.localstack import LocalStack
from services.common.settings import Settings
from simulators.config import SimConfig

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests/fixtures/compose-spec/compose-spec.json"
APP_SERVICES = [name for name, _, _ in deployment.SERVICES]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def env_of(compose: dict[str, Any], service: str) -> dict[str, str]:
    env = compose["services"][service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def published(compose: dict[str, Any], service: str) -> set[int]:
    """Container ports a service publishes ("host:container", same number both sides here)."""
    ports = set()
    for spec in compose["services"][service].get("ports", []):
        host, _, container = str(spec).rpartition(":")
        assert host == container, f"{service}: {spec} maps to another host port"
        ports.add(int(container))
    return ports


def script_env_names() -> set[str]:
    """Every variable name the deployment script puts in a process environment (the keys of
    its dict literals: the services' env, the simulators' env)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(deployment.LocalDeployment.start)))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    if re.fullmatch(r"[A-Z][A-Z0-9_]+", key.value):
                        names.add(key.value)
    return names


def test_the_file_is_valid_under_the_compose_schema(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []
    # The check can fail: a misspelt key and a condition Compose does not know are rejected.
    broken = copy.deepcopy(compose)
    broken["services"]["client-api"]["depends_on_"] = ["postgres"]
    broken["services"]["provision"]["depends_on"]["postgres"]["condition"] = "service_ready"
    errors = " ".join(schema_errors(broken))
    assert "'depends_on_' was unexpected" in errors
    assert "service_ready" in errors


def test_every_process_the_scripts_start_is_a_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    stack_parts = {f.name for f in dataclasses.fields(LocalStack) if f.name != "work_dir"}
    assert stack_parts == {"postgres", "pubsub", "gcs"}
    assert stack_parts <= services.keys()
    for name, module, _ in deployment.SERVICES:
        assert services[name]["command"] == ["python", "-m", module], name
    assert services["simulators"]["command"][:3] == ["python", "-m", "simulators"]
    # Listening on every interface inside its container, as the services do (service_main).
    assert services["simulators"]["command"][3:] == ["--host", "0.0.0.0"]
    # The stack is migrated and provisioned before any service starts (LocalStack.provision).
    assert services["provision"]["command"] == ["python", "-m", "scripts.provision"]
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["provision"] == {
            "condition": "service_completed_successfully"
        }
    orchestrator = services["voice-orchestrator"]["depends_on"]
    assert orchestrator["simulators"] == {"condition": "service_healthy"}


def test_ports_match_what_the_services_listen_on(compose: dict[str, Any]) -> None:
    defaults = Settings()
    for name, _, port_var in deployment.SERVICES:
        port = getattr(defaults, port_var.lower())
        assert port in published(compose, name), name
        healthcheck = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert f"localhost:{port}{processes.ServiceProcess.health_path}" in healthcheck
    sim = SimConfig()
    ports = {sim.twilio_port, sim.deepgram_port, sim.openai_port, sim.elevenlabs_port}
    assert published(compose, "simulators") == ports
    # The addresses the services are given name those services and their ports.
    env = env_of(compose, "client-api")
    db = urlsplit(env["DATABASE_URL"])
    assert db.hostname == "postgres" and db.port in published(compose, "postgres")
    pubsub_host, _, pubsub_port = env["PUBSUB_EMULATOR_HOST"].partition(":")
    assert pubsub_host == "pubsub" and int(pubsub_port) in published(compose, "pubsub")
    gcs = urlsplit(env["STORAGE_EMULATOR_HOST"])
    assert gcs.hostname == "gcs" and gcs.port in published(compose, "gcs")
    vendors = {
        "TWILIO_API_BASE_URL": sim.twilio_port,
        "DEEPGRAM_WS_URL": sim.deepgram_port,
        "OPENAI_BASE_URL": sim.openai_port,
        "ELEVENLABS_BASE_URL": sim.elevenlabs_port,
        "ELEVENLABS_WS_URL": sim.elevenlabs_port,
    }
    for var, port in vendors.items():
        url = urlsplit(env[var])
        assert (url.hostname, url.port) == ("simulators", port), var
    public = urlsplit(env["ORCHESTRATOR_PUBLIC_URL"])
    orchestrator = ("voice-orchestrator", defaults.voice_orchestrator_port)
    assert (public.hostname, public.port) == orchestrator


def test_every_variable_the_scripts_set_is_in_the_file(compose: dict[str, Any]) -> None:
    stack_env = set(LocalStack(Path("/nonexistent")).env())
    script_env = script_env_names()
    assert {"API_KEY", "TWILIO_AUTH_TOKEN", "SIM_TWILIO_AUTH_TOKEN"} <= script_env  # parsed
    port_vars = {var for _, _, var in deployment.SERVICES}  # compose keeps the defaults
    sim_env = {v for v in script_env if v.startswith("SIM_")}
    wanted = (stack_env | script_env) - port_vars - sim_env
    for name in [*APP_SERVICES, "provision"]:
        missing = wanted - env_of(compose, name).keys()
        assert not missing, f"{name} lacks {sorted(missing)}"
    assert sim_env <= env_of(compose, "simulators").keys()
    # The simulated Twilio signs with the token the orchestrator verifies with.
    assert (
        env_of(compose, "simulators")["SIM_TWILIO_AUTH_TOKEN"]
        == env_of(compose, "voice-orchestrator")["TWILIO_AUTH_TOKEN"]
    )
    # processes.py starts every process unbuffered; the image does the same.
    assert "PYTHONUNBUFFERED" in inspect.getsource(processes.ServiceProcess.start)
    assert re.search(r"^ENV .*PYTHONUNBUFFERED=1", (ROOT / "Dockerfile").read_text(), re.M)


def test_every_variable_in_the_file_is_read_by_the_settings(compose: dict[str, Any]) -> None:
    known = {name.upper() for name in Settings.model_fields}
    for name in [*APP_SERVICES, "provision"]:
        unknown = env_of(compose, name).keys() - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which no setting reads"
        # ... and every value parses (a window, a number, a URL).
        Settings(**{k.lower(): v for k, v in env_of(compose, name).items()})

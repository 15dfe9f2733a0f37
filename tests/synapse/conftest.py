"""The real-Synapse suite's environment: the operator binary, Synapse, a
PostgreSQL server, and one booted Synapse per case (a stage of an example
or of a fixture under tests/fixtures/homeserver/), shared by every check of
that case. Nothing is skipped: a missing component fails with its name."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import harness
from expect import Expectations, expectations
from oidc_stub import OidcStub

ROOT = harness.ROOT
FIXTURES = ROOT / "tests" / "fixtures" / "homeserver"
EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class Case:
    path: Path
    stage: str

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}[{self.stage}]"


def cases() -> list[Case]:
    found = []
    for directory in (EXAMPLES, FIXTURES):
        for path in sorted(directory.glob("*.yaml")):
            instance = yaml.safe_load(path.read_text())
            for stage in instance["spec"]["stages"]:
                found.append(Case(path, stage["name"]))
    return found


CASES = cases()


def pytest_configure(config):
    # Synapse's dependencies (Twisted, jsonschema) warn about their own APIs
    # when the config is loaded in-process.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")


def pytest_report_header(config):
    return f"real Synapse: {len(CASES)} cases from examples/ and tests/fixtures/homeserver/"


@pytest.fixture(scope="session")
def environment():
    """Checks that every component is there; fails naming what is missing."""
    binary = harness.caduceus_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"the operator binary {binary} is missing: run `cargo build` (or set CADUCEUS_BIN)", pytrace=False)
    try:
        import synapse
    except ImportError:
        pytest.fail("Synapse is not installed: run pytest with the python of `hack/synapse.sh`", pytrace=False)
    if synapse.__version__ != harness.SYNAPSE_VERSION:
        pytest.fail(f"Synapse {synapse.__version__} found, {harness.SYNAPSE_VERSION} expected: use `hack/synapse.sh`",
                    pytrace=False)
    return binary


@pytest.fixture(scope="session")
def postgres():
    """The server from the CADUCEUS_PG_* variables, or one started here with
    hack/postgres.sh (and stopped again)."""
    started = False
    if "CADUCEUS_PG_PORT" not in os.environ:
        result = subprocess.run([str(ROOT / "hack" / "postgres.sh"), "start"], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"PostgreSQL could not be started by hack/postgres.sh:\n{result.stderr}", pytrace=False)
        for name, value in re.findall(r"(CADUCEUS_PG_\w+)=(\S+)", result.stdout):
            os.environ[name] = value
        started = True
    server = harness.Postgres(
        host=os.environ["CADUCEUS_PG_HOST"],
        port=int(os.environ["CADUCEUS_PG_PORT"]),
        superuser=os.environ["CADUCEUS_PG_SUPERUSER"],
        password=os.environ.get("CADUCEUS_PG_PASSWORD", ""),
    )
    try:
        server.connect().close()
    except Exception as error:  # noqa: BLE001  any failure names the server
        pytest.fail(f"PostgreSQL at {server.host}:{server.port} is not reachable: {error}", pytrace=False)
    yield server
    if started:
        subprocess.run([str(ROOT / "hack" / "postgres.sh"), "stop"], check=False)


@dataclass
class Running:
    case: Case
    expect: Expectations
    prepared: harness.Prepared
    synapse: harness.Synapse
    oidc: OidcStub | None
    postgres: harness.Postgres
    admin_user: str
    admin_password: str
    admin_token: str
    timings: dict

    @property
    def client(self) -> harness.Http:
        return self.synapse.client


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def running(request, environment, postgres, tmp_path_factory) -> Running:
    """One Synapse per case on a fresh database, with an admin registered
    through the shared secret (itself one of the checks)."""
    case: Case = request.param
    timings = {}
    work = tmp_path_factory.mktemp(re.sub(r"[^a-z0-9]+", "-", case.id.lower()))
    started = time.monotonic()
    harness.render(case.path, case.stage, work / "rendered")
    timings["render"] = time.monotonic() - started

    expect = expectations(case.path, case.stage)
    database = f"synapse_{secrets.token_hex(6)}"
    postgres.create_database(database)
    oidc = None
    if expect.oidc_ids:
        oidc = OidcStub().__enter__()
    synapse = None
    try:
        prepared = harness.prepare(work / "rendered", work / "run", postgres, database, oidc.issuer if oidc else None)
        if oidc:
            oidc.clients = {p["client_id"]: prepared.oidc_secrets[p["idp_id"]] for p in prepared.config["oidc_providers"]}
        synapse = harness.Synapse(prepared, work / "run")
        synapse.start()
        timings["boot"] = synapse.boot_seconds
        password = secrets.token_hex(12)
        registered = harness.register_with_shared_secret(
            synapse.client, prepared.registration_shared_secret, "admin", password, admin=True
        )
        yield Running(
            case=case,
            expect=expect,
            prepared=prepared,
            synapse=synapse,
            oidc=oidc,
            postgres=postgres,
            admin_user=registered["user_id"],
            admin_password=password,
            admin_token=registered["access_token"],
            timings=timings,
        )
    finally:
        if synapse:
            synapse.stop()
        if oidc:
            oidc.__exit__(None, None, None)
        postgres.drop_database(database)
        timings["total"] = time.monotonic() - started
        print(f"\n{case.id}: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))

"""The upgrade suite's environment: the operator binary (to render the stage
and read its schema table), the pinned Synapse of hack/synapse.sh (pytest
runs in its venv), an older Synapse from hack/synapse-old.sh, a real
PostgreSQL (hack/postgres.sh), restic and pg_dump for scripts/backup.sh.
Nothing is skipped: a missing component fails with its name and how to get
it. Phase timings are printed at the end of the run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The real-Synapse suite's harness: rendering, fitting and running Synapse.
sys.path.insert(0, str(HERE.parent / "synapse"))
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import upgrade_tools as tools  # noqa: E402

ROOT = harness.ROOT
INSTALL_TIMEOUT = 1800  # seconds; a cold install builds psycopg2


def pytest_configure(config):
    # Synapse's dependencies (Twisted, jsonschema) warn about their own APIs.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")


def pytest_terminal_summary(terminalreporter):
    if tools.TIMINGS:
        terminalreporter.section("upgrade suite timings")
        for name, seconds in tools.TIMINGS.items():
            terminalreporter.write_line(f"{name:<48} {seconds:7.1f} s")


@pytest.fixture(scope="session")
def components():
    """The operator binary, the pinned Synapse, restic and the PostgreSQL
    client tools; fails naming whatever is missing."""
    binary = harness.caduceus_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(
            f"the operator binary {binary} is missing: run `cargo build` (or set CADUCEUS_BIN, as hack/test.sh does)",
            pytrace=False,
        )
    try:
        import synapse
    except ImportError:
        pytest.fail(
            "Synapse is not installed: run pytest with the python of `hack/synapse.sh`, "
            "e.g. `$(hack/synapse.sh | tail -1)/bin/python -m pytest tests/upgrade`",
            pytrace=False,
        )
    if synapse.__version__ != harness.SYNAPSE_VERSION:
        pytest.fail(
            f"Synapse {synapse.__version__} found, {harness.SYNAPSE_VERSION} expected: use the venv of `hack/synapse.sh`",
            pytrace=False,
        )
    missing = [tool for tool in ("restic",) if shutil.which(tool) is None]
    missing += [tool for tool in ("pg_dump", "pg_restore") if not Path(tools.PG_BIN, tool).is_file()]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: install the Debian packages restic and postgresql-15 (hack/deps.sh does)",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="session")
def postgres():
    """The server from the CADUCEUS_PG_* variables; else the running server
    of hack/postgres.sh; else one started here with hack/postgres.sh (and
    stopped again). A server this suite did not start is left running."""
    script = str(ROOT / "hack" / "postgres.sh")
    started = False
    if "CADUCEUS_PG_PORT" not in os.environ:
        found = subprocess.run([script, "env"], capture_output=True, text=True, timeout=60)
        if found.returncode != 0:
            found = subprocess.run([script, "start"], capture_output=True, text=True, timeout=180)
            if found.returncode != 0:
                pytest.fail(f"PostgreSQL could not be started by hack/postgres.sh:\n{found.stderr}", pytrace=False)
            started = True
        for name, value in re.findall(r"(CADUCEUS_PG_\w+)=(\S+)", found.stdout):
            os.environ[name] = value
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
        subprocess.run([script, "stop"], check=False, timeout=120)


@dataclass(frozen=True)
class OldRelease:
    version: str  # e.g. 1.150.0
    venv: Path
    python: str
    schema: int  # its SCHEMA_VERSION
    compat: int  # its SCHEMA_COMPAT_VERSION

    @property
    def release(self) -> str:
        return f"v{self.version}"


@pytest.fixture(scope="session")
def old_synapse() -> OldRelease:
    """The older Synapse an upgrade starts from, installed (or found in the
    cache) by hack/synapse-old.sh."""
    with tools.Stopwatch("old Synapse install (hack/synapse-old.sh)"):
        try:
            done = subprocess.run(
                [str(ROOT / "hack" / "synapse-old.sh")], capture_output=True, text=True, timeout=INSTALL_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"hack/synapse-old.sh did not finish within {INSTALL_TIMEOUT} s", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"the older Synapse could not be installed by hack/synapse-old.sh:\n{done.stderr[-3000:]}",
                    pytrace=False)
    venv = Path(done.stdout.splitlines()[-1])
    python = str(venv / "bin" / "python")
    version, schema, compat = tools.installed_schema(python)
    wanted = os.environ.get("OLD_SYNAPSE_VERSION")
    if wanted and version != wanted:
        pytest.fail(f"hack/synapse-old.sh installed Synapse {version}, OLD_SYNAPSE_VERSION is {wanted}", pytrace=False)
    if version == harness.SYNAPSE_VERSION:
        pytest.fail(f"the old Synapse is the pinned one ({version}); an upgrade needs an older release", pytrace=False)
    return OldRelease(version=version, venv=venv, python=python, schema=schema, compat=compat)

"""The backup suite's environment: restic and pg_dump from Debian, a real
PostgreSQL (hack/postgres.sh), the pinned Synapse of hack/synapse.sh and the
operator binary for rendering. Nothing is skipped: a missing component fails
with its name and how to get it."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The real-Synapse suite's harness: rendering, fitting and running Synapse.
sys.path.insert(0, str(HERE.parent / "synapse"))
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
from backup_tools import PG_BIN, Stage  # noqa: E402

ROOT = harness.ROOT


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")


@pytest.fixture(scope="session")
def tools():
    """restic and the PostgreSQL client tools the scripts call."""
    missing = [tool for tool in ("restic",) if shutil.which(tool) is None]
    missing += [tool for tool in ("pg_dump", "pg_restore", "psql") if not Path(PG_BIN, tool).is_file()]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: install the Debian packages restic and postgresql-15 (hack/deps.sh does)",
            pytrace=False,
        )
    version = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()
    return version


@pytest.fixture(scope="session")
def postgres(tools):
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


@pytest.fixture(scope="session")
def synapse_environment():
    """The operator binary (to render the stage) and the pinned Synapse."""
    binary = harness.caduceus_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"the operator binary {binary} is missing: run `cargo build` (or set CADUCEUS_BIN)", pytrace=False)
    try:
        import synapse
    except ImportError:
        pytest.fail("Synapse is not installed: run pytest with the python of `hack/synapse.sh`", pytrace=False)
    if synapse.__version__ != harness.SYNAPSE_VERSION:
        pytest.fail(f"Synapse {synapse.__version__} found, {harness.SYNAPSE_VERSION} expected", pytrace=False)
    return binary


def query(postgres, database: str, sql: str):
    conn = postgres.connect(database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@pytest.fixture
def small_stage(postgres, tmp_path):
    """A stage with a small database (a table of rows, and the one-time-keys
    table whose data a backup leaves out), a media file and keys, backed up
    once into a fresh local repository."""
    database = f"backup_{secrets.token_hex(5)}"
    postgres.create_database(database)
    query(
        postgres,
        database,
        "CREATE TABLE events (id serial PRIMARY KEY, body text);"
        "INSERT INTO events (body) SELECT 'message ' || n FROM generate_series(1, 100) AS n;"
        "CREATE TABLE e2e_one_time_keys_json (user_id text, key_json text);"
        "INSERT INTO e2e_one_time_keys_json VALUES ('@a:example.org', '{}');",
    )
    root = tmp_path / "root"
    (root / "media" / "local_content" / "ab").mkdir(parents=True)
    (root / "media" / "local_content" / "ab" / "cdef").write_bytes(os.urandom(4096))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "signing.key").write_text("ed25519 a_test AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
    (keys / "database-password").write_text("not-used-here\n")
    stage = Stage(
        name="beta",
        repository=tmp_path / "repository",
        password=secrets.token_hex(16),
        database=database,
        postgres=postgres,
        root=root,
        keys=keys,
    )
    yield stage
    postgres.drop_database(database)

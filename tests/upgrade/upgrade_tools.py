"""What the upgrade tests need beyond the real-Synapse harness of
tests/synapse/harness.py (imported, not copied): a Synapse run from another
release's virtualenv, the operator's schema table, the schema a database is
at, and the repository's backup and smoke-test scripts run as the operator's
Jobs run them."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path

import harness

ROOT = harness.ROOT
BACKUP = ROOT / "scripts" / "backup.sh"
SMOKE = ROOT / "scripts" / "smoke-test.py"
PG_BIN = os.environ.get("CADUCEUS_PG_BIN", "/usr/lib/postgresql/15/bin")
SCRIPT_TIMEOUT = 300  # seconds, for a backup or a smoke test
TERMINATION_LOG = Path("/dev/termination-log")

# Phase -> seconds, printed at the end of the run (see conftest.py).
TIMINGS: dict[str, float] = {}


class Stopwatch:
    """`with Stopwatch("boot"):` records the block's duration in TIMINGS."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.started
        TIMINGS[self.name] = self.seconds
        return False


class Synapse(harness.Synapse):
    """harness.Synapse, but run by the Python of a given virtualenv (the old
    release's or the pinned one's), with a log file per run."""

    def __init__(self, prepared: harness.Prepared, run_dir: Path, python: str, name: str):
        super().__init__(prepared, run_dir)
        self.python = python
        self.log_path = run_dir / f"synapse-{name}.log"

    # harness.Synapse.start with `self.python` for `sys.executable`.
    def start(self) -> None:
        started = time.monotonic()
        with self.log_path.open("a") as log:  # a restart appends
            self.process = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "synapse.app.homeserver",
                    "-c",
                    str(self.prepared.homeserver),
                    "-c",
                    str(self.prepared.secrets_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
            )
        while time.monotonic() - started < harness.BOOT_TIMEOUT:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"Synapse ({self.python}) exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                status, _, _ = self.client.request("GET", "/health", timeout=2)
                if status == 200:
                    self.boot_seconds = time.monotonic() - started
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise AssertionError(f"Synapse ({self.python}) was not healthy within {harness.BOOT_TIMEOUT} s:\n{self.log_tail()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def operator_table() -> dict[str, tuple[int, int]]:
    """`caduceus releases`: release -> (SCHEMA_VERSION, SCHEMA_COMPAT_VERSION),
    the table of src/plan/rollout/schema.rs the operator gates rollouts with."""
    done = subprocess.run([str(harness.caduceus_binary()), "releases"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"caduceus releases failed:\n{done.stderr}")
    table = {}
    for line in done.stdout.splitlines():
        release, schema, compat = line.split()
        table[release] = (int(schema), int(compat))
    return table


def installed_schema(python: str) -> tuple[str, int, int]:
    """(version, SCHEMA_VERSION, SCHEMA_COMPAT_VERSION) of the Synapse the
    given interpreter imports."""
    done = subprocess.run(
        [
            python,
            "-c",
            "import json, synapse; from synapse.storage.schema import SCHEMA_VERSION, SCHEMA_COMPAT_VERSION; "
            "print(json.dumps([synapse.__version__, SCHEMA_VERSION, SCHEMA_COMPAT_VERSION]))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"{python} cannot import Synapse:\n{done.stderr}")
    version, schema, compat = json.loads(done.stdout.splitlines()[-1])
    return version, schema, compat


@dataclass(frozen=True)
class DatabaseSchema:
    version: int  # schema_version.version
    upgraded: bool  # schema_version.upgraded: deltas ran on top of a full-schema dump (a fresh database too)
    compat: int  # schema_compat_version.compat_version


def database_schema(postgres: harness.Postgres, database: str) -> DatabaseSchema:
    conn = postgres.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version, upgraded FROM schema_version")
            rows = cur.fetchall()
            assert len(rows) == 1, f"schema_version holds {len(rows)} rows, expected one: {rows}"
            version, upgraded = rows[0]
            cur.execute("SELECT compat_version FROM schema_compat_version")
            compat_rows = cur.fetchall()
            assert len(compat_rows) == 1, f"schema_compat_version holds {len(compat_rows)} rows, expected one"
        return DatabaseSchema(version=int(version), upgraded=bool(upgraded), compat=int(compat_rows[0][0]))
    finally:
        conn.close()


def query(postgres: harness.Postgres, database: str, sql: str, *args) -> list[tuple]:
    conn = postgres.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


@dataclass
class ScriptRun:
    """One run of a repository script: exit status, its last-line JSON result."""

    returncode: int
    result: dict
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.1f} s\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def _run(argv: list[str], env: dict, timeout: int) -> ScriptRun:
    started = time.monotonic()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"{argv[-1]} did not finish within {timeout} s:\n{expired.stdout}\n{expired.stderr}") from None
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    run = ScriptRun(done.returncode, result, done.stdout, done.stderr, time.monotonic() - started)
    if not isinstance(result, dict) or "result" not in result:
        raise AssertionError(f"{argv[-1]} did not end with a JSON result line:\n{run.describe()}")
    return run


def backup_env(
    *,
    repository: Path,
    password: str,
    postgres: harness.Postgres,
    database: str,
    stage: str,
    reason: str,
    root: Path,
    keys: Path,
    scratch: Path,
) -> dict:
    """The environment scripts/backup.sh documents in its header, as the
    operator's backup Job sets it, pointed at this machine."""
    return {
        "PATH": f"{PG_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "TZ": "UTC",
        "RESTIC_REPOSITORY": str(repository),
        "RESTIC_PASSWORD": password,
        "RESTIC_CACHE_DIR": str(scratch / "restic-cache"),
        "PGHOST": postgres.host,
        "PGPORT": str(postgres.port),
        "PGUSER": postgres.superuser,
        "PGPASSWORD": postgres.password,
        "PGDATABASE": database,
        "PGCONNECT_TIMEOUT": "5",
        "CADUCEUS_STAGE": stage,
        "CADUCEUS_REASON": reason,
        "CADUCEUS_BACKUP_ROOT": str(root),
        "CADUCEUS_KEYS_DIR": str(keys),
        "CADUCEUS_KEYS_SECRET": f"upgrade-{stage}-keys",
        "CADUCEUS_NAMESPACE": "messenger",
        "CADUCEUS_REPOSITORY_INIT": "allow",
        # No termination log outside a pod: the result goes to a file here.
        "CADUCEUS_RESULT_FILE": str(scratch / f"backup-result-{stage}.json"),
    }


def backup(env: dict) -> ScriptRun:
    return _run(["/bin/sh", str(BACKUP)], env, SCRIPT_TIMEOUT)


def restic(env: dict, *args: str) -> str:
    done = subprocess.run(["restic", *args], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    if done.returncode != 0:
        raise AssertionError(f"restic {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def smoke_test(synapse_url: str, shared_secret: str | None, expect_encryption: bool, timeout: int = SCRIPT_TIMEOUT) -> ScriptRun:
    """scripts/smoke-test.py as the smoke-test Job runs it (standard library
    only, so any Python 3 runs it; here the pinned venv's)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "SYNAPSE_URL": synapse_url,
        "EXPECT_ENCRYPTION": "true" if expect_encryption else "false",
    }
    if shared_secret is not None:
        env["REGISTRATION_SHARED_SECRET"] = shared_secret
    # The script writes its result to /dev/termination-log, which only a pod
    # has; outside one, as root, that creates the file. Remove what it
    # created, so the machine is left as found.
    existed = TERMINATION_LOG.exists()
    try:
        return _run([sys.executable, str(SMOKE)], env, timeout)
    finally:
        if not existed and TERMINATION_LOG.is_file():
            TERMINATION_LOG.unlink(missing_ok=True)
            warnings.warn(
                "scripts/smoke-test.py created /dev/termination-log outside a pod; the test removed it",
                stacklevel=2,
            )


def upload_media(netloc: str, token: str, data: bytes, content_type: str, filename: str) -> str:
    """POST /_matrix/media/v3/upload; returns the mxc:// URI."""
    conn = http.client.HTTPConnection(netloc, timeout=harness.HTTP_TIMEOUT)
    try:
        conn.request(
            "POST",
            "/_matrix/media/v3/upload?filename=" + urllib.parse.quote(filename),
            body=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        )
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise AssertionError(f"media upload answered {response.status}: {body[:300]!r}")
        return json.loads(body)["content_uri"]
    finally:
        conn.close()


def download_media(netloc: str, token: str, mxc: str) -> bytes:
    """GET /_matrix/client/v1/media/download/SERVER/ID (authenticated media)."""
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    conn = http.client.HTTPConnection(netloc, timeout=harness.HTTP_TIMEOUT)
    try:
        conn.request(
            "GET",
            f"/_matrix/client/v1/media/download/{harness.quote(server)}/{harness.quote(media_id)}",
            headers={"Authorization": f"Bearer {token}"},
        )
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise AssertionError(f"media download of {mxc} answered {response.status}: {body[:300]!r}")
        return body
    finally:
        conn.close()


def room_messages(client: harness.Http, token: str, room_id: str) -> list[dict]:
    return client.ok("GET", f"/_matrix/client/v3/rooms/{harness.quote(room_id)}/messages?dir=b&limit=50", token=token)[
        "chunk"
    ]


def room_is_encrypted(client: harness.Http, token: str, room_id: str) -> bool:
    state = client.ok("GET", f"/_matrix/client/v3/rooms/{harness.quote(room_id)}/state", token=token)
    return any(event.get("type") == "m.room.encryption" for event in state)

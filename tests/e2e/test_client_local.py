"""Local proof of the end-to-end client: boots a real Synapse (the pinned
release from hack/synapse.sh, SQLite, loopback, a free port), runs
tests/e2e/matrix_e2ee.py against it, then dumps the room's event_json and
runs the client's check-ciphertext on it.

    VENV=$(hack/e2e-client.sh | tail -1)
    $VENV/bin/python -m pytest -v tests/e2e/test_client_local.py

It runs twice: on SQLite, and on PostgreSQL 15 from hack/postgres.sh (its
own state directory, /tmp/caduceus-e2e-client-postgres, started and stopped
here) with the room dumped by `psql -At`, exactly the text the lead pipes
from the cluster's database pod.

Needs hack/synapse.sh's virtualenv (found by running the script, or
SYNAPSE_VENV). The server is configured like the operator's hospital profile
where it matters here: encryption_enabled_by_default_for_room_type: all,
authenticated media (Synapse's default), a registration_shared_secret, and
Synapse's default rate limits (the client stays within them).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests" / "e2e" / "matrix_e2ee.py"
BOOT_TIMEOUT = 120


def synapse_python() -> str:
    venv = os.environ.get("SYNAPSE_VENV")
    if not venv:
        out = subprocess.run([str(ROOT / "hack" / "synapse.sh")], check=True, capture_output=True, text=True)
        venv = out.stdout.strip().splitlines()[-1]
    return str(Path(venv) / "bin" / "python")


def client_python() -> str:
    """The interpreter with matrix-nio: $CADUCEUS_E2E_PYTHON, this one when it
    has nio, else hack/e2e-client.sh's venv (so the test runs under the
    Synapse venv too, as hack/test.sh runs tests/e2e)."""
    if os.environ.get("CADUCEUS_E2E_PYTHON"):
        return os.environ["CADUCEUS_E2E_PYTHON"]
    try:
        import nio  # noqa: F401

        return sys.executable
    except ImportError:
        out = subprocess.run([str(ROOT / "hack" / "e2e-client.sh")], check=True, capture_output=True, text=True)
        return str(Path(out.stdout.strip().splitlines()[-1]) / "bin" / "python")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PG_DIR = "/tmp/caduceus-e2e-client-postgres"
PG_DATABASE = "caduceus_e2e_client"


def postgres(*args: str) -> str:
    env = {**os.environ, "CADUCEUS_PG_DIR": PG_DIR}
    out = subprocess.run([str(ROOT / "hack" / "postgres.sh"), *args], check=True, capture_output=True, text=True, env=env)
    return out.stdout


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL of this test's own; yields a `psql -At -c SQL` runner."""
    postgres("start")  # this test's own state directory: ours to stop
    env = dict(part.split("=", 1) for part in postgres("env").split()[1:])
    postgres("createdb", PG_DATABASE)
    psql = Path(os.environ.get("CADUCEUS_PG_BIN", "/usr/lib/postgresql/15/bin")) / "psql"

    def run_sql(sql: str) -> str:
        return subprocess.run(
            [str(psql), "-At", "-h", env["CADUCEUS_PG_HOST"], "-p", env["CADUCEUS_PG_PORT"], "-U",
             env["CADUCEUS_PG_SUPERUSER"], "-d", PG_DATABASE, "-c", sql],
            check=True, capture_output=True, text=True, env={**os.environ, "PGPASSWORD": env["CADUCEUS_PG_PASSWORD"]},
        ).stdout

    try:
        yield {**env, "run_sql": run_sql}
    finally:
        postgres("stop")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def synapse(request, tmp_path_factory):
    database = request.param
    pg = request.getfixturevalue("pg") if database == "postgres" else None
    run_dir = tmp_path_factory.mktemp(f"synapse-{database}")
    python = synapse_python()
    port = free_port()
    secret = secrets.token_urlsafe(32)
    subprocess.run(
        [python, "-m", "synapse.app.homeserver", "--server-name", "e2e.test", "--config-path",
         str(run_dir / "homeserver.yaml"), "--data-directory", str(run_dir), "--generate-config",
         "--report-stats=no"],
        check=True, capture_output=True, cwd=run_dir,
    )
    overrides = {
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                       "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
        "registration_shared_secret": secret,
        "encryption_enabled_by_default_for_room_type": "all",
        "enable_authenticated_media": True,
        "enable_registration": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "presence": {"enabled": False},
    }
    if pg:
        overrides["database"] = {"name": "psycopg2", "args": {
            "user": pg["CADUCEUS_PG_SUPERUSER"], "password": pg["CADUCEUS_PG_PASSWORD"], "dbname": PG_DATABASE,
            "host": pg["CADUCEUS_PG_HOST"], "port": int(pg["CADUCEUS_PG_PORT"]), "cp_min": 1, "cp_max": 5}}
    (run_dir / "overrides.yaml").write_text(json.dumps(overrides))  # JSON is YAML
    log = (run_dir / "synapse.log").open("w")
    process = subprocess.Popen(
        [python, "-m", "synapse.app.homeserver", "-c", str(run_dir / "homeserver.yaml"), "-c",
         str(run_dir / "overrides.yaml")],
        stdout=log, stderr=subprocess.STDOUT, cwd=run_dir,
    )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"Synapse exited with {process.returncode}:\n{tail(run_dir)}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > BOOT_TIMEOUT:
                raise AssertionError(f"Synapse not healthy within {BOOT_TIMEOUT} s:\n{tail(run_dir)}")
            time.sleep(0.25)
        print(f"Synapse up at {url} in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield {"url": url, "secret": secret, "dir": run_dir, "database": database, "pg": pg,
               "db": run_dir / "homeserver.db"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def tail(run_dir: Path, lines: int = 60) -> str:
    path = run_dir / "synapse.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def last_json(stdout: str) -> dict:
    lines = stdout.strip().splitlines()
    assert lines, "the client printed nothing on stdout (see its stderr above)"
    return json.loads(lines[-1])


def test_e2ee_exchange_and_ciphertext_only(synapse, tmp_path):
    python = client_python()
    started = time.monotonic()
    run = subprocess.run(
        [python, str(CLIENT), "--url", synapse["url"], f"--shared-secret={synapse['secret']}",  # the = form: a secret may start with "-"
         "--server-name", "e2e.test", "--store", str(tmp_path / "store"), "--expect-server-encryption"],
        capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - started
    print(run.stderr, file=sys.stderr)
    result = last_json(run.stdout)
    print(json.dumps(result, indent=2), file=sys.stderr)
    assert run.returncode == 0 and result["result"] == "success", f"{result}\n{tail(synapse['dir'])}"
    assert elapsed < 90, f"the run took {elapsed:.1f} s"
    assert result["server_enforced_encryption"] is True
    assert len(result["plaintext_markers"]) == 3
    assert result["media"]["unauthenticated_download_status"] == 401
    assert set(result["checks"]) == {"register", "login", "encrypted_room", "e2ee_message", "e2ee_reply", "media"}

    # What the lead does with psql against the cluster's PostgreSQL.
    if synapse["pg"]:
        room = result["room_id"].replace("'", "''")
        dump = synapse["pg"]["run_sql"](f"SELECT json FROM event_json WHERE room_id = '{room}'")
    else:
        with sqlite3.connect(synapse["db"]) as db:
            rows = db.execute("SELECT json FROM event_json WHERE room_id = ?", (result["room_id"],)).fetchall()
        dump = "\n".join(row[0] for row in rows) + "\n"
    markers = tmp_path / "client-output.json"
    markers.write_text(run.stdout)
    check = subprocess.run(
        [python, str(CLIENT), "check-ciphertext", "--markers-file", str(markers)],
        input=dump, capture_output=True, text=True, timeout=60,
    )
    verdict = last_json(check.stdout)
    print(json.dumps(verdict), file=sys.stderr)
    assert check.returncode == 0 and verdict["result"] == "success", verdict
    assert verdict["megolm_events"] >= 3

    # The check must fail when a marker is in the dump (it is not vacuous).
    leaked = subprocess.run(
        [python, str(CLIENT), "check-ciphertext", "--markers-file", str(markers)],
        input=dump + json.dumps({"type": "m.room.message", "content": {"body": result["plaintext_markers"][0]}}),
        capture_output=True, text=True, timeout=60,
    )
    assert leaked.returncode == 1 and "plaintext found" in last_json(leaked.stdout)["message"]

    # The whole database, not just the room: no marker anywhere in it.
    if synapse["pg"]:
        raw = subprocess.run(
            [str(Path(os.environ.get("CADUCEUS_PG_BIN", "/usr/lib/postgresql/15/bin")) / "pg_dump"), "-h",
             synapse["pg"]["CADUCEUS_PG_HOST"], "-p", synapse["pg"]["CADUCEUS_PG_PORT"], "-U",
             synapse["pg"]["CADUCEUS_PG_SUPERUSER"], PG_DATABASE],
            check=True, capture_output=True, env={**os.environ, "PGPASSWORD": synapse["pg"]["CADUCEUS_PG_PASSWORD"]},
        ).stdout
        # check-ciphertext on a whole pg_dump (pattern mode) as well.
        whole = subprocess.run(
            [python, str(CLIENT), "check-ciphertext", "--markers-file", str(markers)],
            input=raw.decode(errors="replace"), capture_output=True, text=True, timeout=60,
        )
        assert whole.returncode == 0, whole.stdout
        print(whole.stdout.strip(), file=sys.stderr)
    else:
        raw = Path(synapse["db"]).read_bytes()
    for marker in result["plaintext_markers"]:
        assert marker.encode() not in raw, f"{marker} found in the SQLite database file"

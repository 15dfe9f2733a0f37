"""Running the repository's backup and restore scripts (scripts/backup.sh and
scripts/restore.sh, the very files the operator mounts into its Jobs) and
restic itself, against real PostgreSQL and a real restic repository."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BACKUP = ROOT / "scripts" / "backup.sh"
RESTORE = ROOT / "scripts" / "restore.sh"
PG_BIN = os.environ.get("CADUCEUS_PG_BIN", "/usr/lib/postgresql/15/bin")
SCRIPT_TIMEOUT = 600


@dataclass
class Outcome:
    """What a script run ended with: exit status, its result line, stderr."""

    returncode: int
    result: dict
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@dataclass
class Stage:
    """The environment of one stage's backups: repository, database, root
    (whose media/ is the media store) and keys directory."""

    name: str
    repository: Path | str
    password: str
    database: str
    postgres: object  # harness.Postgres
    root: Path
    keys: Path
    extra: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"test-{self.name}"

    def env(self, **overrides: str) -> dict:
        env = {
            "PATH": f"{PG_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "TZ": "UTC",
            "RESTIC_REPOSITORY": str(self.repository),
            "RESTIC_PASSWORD": self.password,
            "RESTIC_CACHE_DIR": str(self.root.parent / "restic-cache"),
            "PGHOST": self.postgres.host,
            "PGPORT": str(self.postgres.port),
            "PGUSER": self.postgres.superuser,
            "PGPASSWORD": self.postgres.password,
            "PGDATABASE": self.database,
            "PGCONNECT_TIMEOUT": "5",
            "CADUCEUS_STAGE": self.name,
            "CADUCEUS_HOST": self.host,
            "CADUCEUS_BACKUP_ROOT": str(self.root),
            "CADUCEUS_KEYS_DIR": str(self.keys),
            "CADUCEUS_KEYS_SECRET": f"test-{self.name}-keys",
            "CADUCEUS_NAMESPACE": "messenger",
            "CADUCEUS_REPOSITORY_INIT": "allow",
            # Results go to stdout only, as there is no termination log here.
            "CADUCEUS_RESULT_FILE": str(self.root.parent / f"result-{self.name}.json"),
        }
        env.update(self.extra)
        env.update(overrides)
        return env


def run_script(script: Path, env: dict) -> Outcome:
    started = time.monotonic()
    done = subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    seconds = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    outcome = Outcome(done.returncode, result, done.stdout, done.stderr, seconds)
    if not result:
        raise AssertionError(f"{script.name} printed no JSON result line:\n{outcome.describe()}")
    # The result file (the termination message in a Job) holds the same line.
    result_file = Path(env["CADUCEUS_RESULT_FILE"])
    if result_file.is_file():
        assert json.loads(result_file.read_text()) == result, "the result file holds the result line"
    return outcome


def backup(stage: Stage, **overrides: str) -> Outcome:
    return run_script(BACKUP, stage.env(**overrides))


def restore(stage: Stage, **overrides: str) -> Outcome:
    return run_script(RESTORE, stage.env(**overrides))


def restic(stage: Stage, *args: str, check: bool = True, **overrides: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["restic", *args], env=stage.env(**overrides), capture_output=True, text=True, timeout=SCRIPT_TIMEOUT
    )
    if check and done.returncode != 0:
        raise AssertionError(f"restic {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def snapshots(stage: Stage) -> list[dict]:
    """Every snapshot in the repository, read with the right password."""
    return json.loads(restic(stage, "snapshots", "--json").stdout) or []


def snapshot_ids(stage: Stage) -> set[str]:
    return {s["short_id"] for s in snapshots(stage)}


def check_repository(stage: Stage) -> None:
    """`restic check --read-data`: every snapshot and every byte intact."""
    restic(stage, "check", "--read-data")


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())

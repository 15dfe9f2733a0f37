"""Failure cases of the backup and restore scripts, each against real
PostgreSQL and a real restic repository: the message is clear (names the
cause and the fix), the exit status and result line say failure, and the
snapshots already in the repository are untouched and intact."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from backup_tools import backup, check_repository, restore, snapshot_ids
from conftest import query


def first_backup(stage) -> set[str]:
    outcome = backup(stage)
    assert outcome.returncode == 0, outcome.describe()
    assert outcome.result["result"] == "success"
    ids = snapshot_ids(stage)
    assert ids == {outcome.result["snapshot"]}
    return ids


def assert_failed(outcome, *phrases: str) -> str:
    assert outcome.returncode == 1, outcome.describe()
    assert outcome.result["result"] == "failure", outcome.describe()
    message = outcome.result["message"]
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"
    # The same message is on stderr, for the Job's log.
    assert message[:60] in outcome.stderr
    print(f"\n  message: {message}")
    return message


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_wrong_repository_password_is_named_and_touches_nothing(small_stage):
    before = first_backup(small_stage)
    wrong = backup(small_stage, RESTIC_PASSWORD="not-the-repository-password")
    assert_failed(wrong, "wrong repository password", "spec.backups.passwordSecretRef", "untouched")
    assert_failed(
        restore(small_stage, RESTIC_PASSWORD="not-the-repository-password"), "wrong repository password"
    )
    assert snapshot_ids(small_stage) == before
    check_repository(small_stage)


def test_an_unreachable_database_is_named_and_writes_no_snapshot(small_stage):
    before = first_backup(small_stage)
    port = unused_port()
    outcome = backup(small_stage, PGPORT=str(port))
    assert_failed(outcome, "the database is unreachable", f"127.0.0.1:{port}", "no snapshot was written")
    assert snapshot_ids(small_stage) == before
    check_repository(small_stage)
    # The scratch copies of dump and keys are gone after a failure.
    assert not (small_stage.root / "database").exists()
    assert not (small_stage.root / "keys").exists()


def test_a_missing_repository_is_named_and_never_created_by_a_restore(small_stage, tmp_path):
    before = first_backup(small_stage)
    nowhere = tmp_path / "no-such-repository"
    outcome = backup(small_stage, RESTIC_REPOSITORY=str(nowhere), CADUCEUS_REPOSITORY_INIT="never")
    assert_failed(outcome, "there is no restic repository", str(nowhere), "spec.backups.repository")
    assert not nowhere.exists(), "a failed backup creates no repository"
    assert_failed(restore(small_stage, RESTIC_REPOSITORY=str(nowhere)), "there is no restic repository")
    assert not nowhere.exists(), "a restore never creates a repository"
    assert snapshot_ids(small_stage) == before
    check_repository(small_stage)


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 2 MiB tmpfs (mounting needs root, as the test machines and CI run)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.fail(
            f"cannot mount a 2 MiB tmpfs for the disk-full case (needs root): {done.stderr.strip()}", pytrace=False
        )
    yield mount_point
    subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def test_a_full_repository_is_named_and_earlier_snapshots_stay_intact(small_stage, tiny_filesystem):
    small_stage.repository = tiny_filesystem / "repository"
    before = first_backup(small_stage)
    # 8 MiB of incompressible media cannot fit into 2 MiB.
    big = small_stage.root / "media" / "local_content" / "ab" / "big-upload"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    outcome = backup(small_stage)
    assert_failed(
        outcome, "is full (no space left on device)", "no snapshot was written", "spec.backups.repository.pvc.size"
    )
    assert snapshot_ids(small_stage) == before
    check_repository(small_stage)
    # With room again, the next backup succeeds in the same repository.
    big.unlink()
    again = backup(small_stage)
    assert again.returncode == 0, again.describe()
    assert again.result["snapshot"] in snapshot_ids(small_stage)
    check_repository(small_stage)


def test_a_restore_refuses_a_database_with_tables_and_changes_nothing(small_stage):
    first_backup(small_stage)
    query(small_stage.postgres, small_stage.database, "INSERT INTO events (body) VALUES ('written after the backup')")
    outcome = restore(small_stage)
    assert outcome.returncode == 3, outcome.describe()
    assert outcome.result["result"] == "refused"
    assert "is not empty (2 tables)" in outcome.result["message"]
    assert "nothing was changed" in outcome.result["message"]
    rows = query(small_stage.postgres, small_stage.database, "SELECT count(*) FROM events")
    assert rows == [(101,)], "the live data is untouched"


def test_a_restore_refuses_another_identity_and_foreign_snapshots(small_stage):
    first_backup(small_stage)
    small_stage.postgres.create_database(small_stage.database)  # empty again
    # The keys Secret (read-only in a Job) holds another signing key.
    other_keys = small_stage.keys.parent / "other-keys"
    other_keys.mkdir()
    (other_keys / "signing.key").write_text("ed25519 a_othr BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n")
    (other_keys / "database-password").write_text("not-used-here\n")
    outcome = restore(small_stage, CADUCEUS_KEYS_DIR=str(other_keys), CADUCEUS_KEYS_RESTORE="verify")
    assert_failed(outcome, "different signing.key", "/kubernetes/keys-secret.yaml | kubectl apply -f -")
    tables = query(small_stage.postgres, small_stage.database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [(0,)], "nothing was restored under another identity"
    # A snapshot is only restored into the stage it was taken of.
    outcome = restore(small_stage, CADUCEUS_STAGE="production", CADUCEUS_HOST=small_stage.host)
    assert_failed(outcome, "holds no snapshot of stage production")
    snapshot = next(iter(snapshot_ids(small_stage)))
    outcome = restore(small_stage, CADUCEUS_STAGE="production", CADUCEUS_HOST=small_stage.host, CADUCEUS_SNAPSHOT=snapshot)
    assert_failed(outcome, f"snapshot {snapshot} is not a snapshot of stage production")


def test_bad_configuration_is_refused_before_touching_anything(small_stage):
    outcome = backup(small_stage, CADUCEUS_REASON="nightly")
    assert outcome.returncode == 2, outcome.describe()
    assert "'scheduled' or 'pre-upgrade:<release>'" in outcome.result["message"]
    outcome = backup(small_stage, CADUCEUS_KEEP_DAILY="seven")
    assert outcome.returncode == 2 and "spec.backups.keep" in outcome.result["message"]
    outcome = restore(small_stage, CADUCEUS_SNAPSHOT="../etc")
    assert outcome.returncode == 2 and "neither 'latest' nor a snapshot id" in outcome.result["message"]
    assert not Path(small_stage.repository).exists()

"""Retention: snapshots taken in the past (restic backup --time) are pruned
by the backup script exactly as spec.backups.keep says, and only scheduled
snapshots of the stage itself are subject to it."""

from __future__ import annotations

from backup_tools import backup, check_repository, restic, snapshots

# Scheduled snapshots of the stage, taken in the past (UTC).
PAST = [
    "2025-03-15 01:30:00",
    "2025-04-15 01:30:00",
    "2025-05-20 01:30:00",
    "2025-06-01 01:30:00",
    "2025-06-08 01:30:00",
    "2025-06-09 01:30:00",
    "2025-06-10 01:30:00",
    "2025-06-10 13:00:00",
]


def test_forget_keeps_exactly_what_keep_says(small_stage, tmp_path):
    stage = small_stage
    first = backup(stage)  # creates the repository
    assert first.returncode == 0, first.describe()
    restic(stage, "forget", first.result["snapshot"])
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "file").write_text("past\n")
    common = ["backup", "--host", stage.host, "--tag", f"stage:{stage.name}"]
    for time in PAST:
        restic(stage, *common, "--tag", "scheduled", "--time", time, str(payload))
    # Neither a pre-upgrade snapshot nor another stage's snapshot is subject
    # to the stage's retention.
    restic(stage, *common, "--tag", "pre-upgrade:v1.160.0", "--time", "2025-01-01 02:00:00", str(payload))
    restic(
        stage, "backup", "--host", "test-production", "--tag", "stage:production", "--tag", "scheduled",
        "--time", "2025-02-01 01:30:00", str(payload),
    )

    # keep: 2 daily, 3 weekly, 4 monthly; the script's own snapshot is today.
    now = backup(stage, CADUCEUS_KEEP_DAILY="2", CADUCEUS_KEEP_WEEKLY="3", CADUCEUS_KEEP_MONTHLY="4")
    assert now.returncode == 0, now.describe()
    assert "warning" not in now.result, now.result

    kept = {(s["hostname"], s["time"][:19].replace("T", " "), tuple(sorted(s.get("tags") or []))) for s in snapshots(stage)}
    scheduled = sorted(time for host, time, tags in kept if host == stage.host and "scheduled" in tags)
    today = next(time for host, time, tags in kept if host == stage.host and "scheduled" in tags and time > "2026")
    # Daily: today and 2025-06-10 (its last snapshot, 13:00). Weekly adds
    # the week of June 2-8 (06-08). Monthly adds May (05-20) and April (04-15).
    assert scheduled == [
        "2025-04-15 01:30:00",
        "2025-05-20 01:30:00",
        "2025-06-08 01:30:00",
        "2025-06-10 13:00:00",
        today,
    ]
    assert (stage.host, "2025-01-01 02:00:00", ("pre-upgrade:v1.160.0", f"stage:{stage.name}")) in kept
    assert ("test-production", "2025-02-01 01:30:00", ("scheduled", "stage:production")) in kept
    assert len(kept) == 7
    check_repository(stage)


def test_a_pre_upgrade_backup_prunes_nothing(small_stage):
    stage = small_stage
    for _ in range(2):
        outcome = backup(stage, CADUCEUS_KEEP_DAILY="1", CADUCEUS_KEEP_WEEKLY="0", CADUCEUS_KEEP_MONTHLY="0")
        assert outcome.returncode == 0, outcome.describe()
    assert len(snapshots(stage)) == 1, "keep daily 1 leaves one scheduled snapshot of today"
    outcome = backup(stage, CADUCEUS_REASON="pre-upgrade:v1.163.2", CADUCEUS_KEEP_DAILY="1")
    assert outcome.returncode == 0, outcome.describe()
    tags = sorted(tuple(sorted(s["tags"])) for s in snapshots(stage))
    assert tags == [("pre-upgrade:v1.163.2", "stage:beta"), ("scheduled", "stage:beta")]

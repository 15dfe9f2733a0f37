"""A quarterly upgrade on real components, the way the operator drives it:
an older Synapse from PyPI creates the stage's database and holds a user's
messages and media; the pre-upgrade backup is taken with scripts/backup.sh;
the pinned Synapse starts on the same database and media and migrates the
schema; scripts/smoke-test.py passes against it; the old user's data is
still there; the schema is what the operator's table (src/plan/rollout/schema.rs,
`caduceus releases`) says; and the rollback the table allows really runs.

One upgrade is shared by the module's checks (the `upgrade` fixture)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import harness
import upgrade_tools as tools

EXAMPLE = harness.ROOT / "examples" / "minimal.yaml"
STAGE = "main"


@dataclass
class OldData:
    """What a user left behind on the old release."""

    user_id: str
    password: str
    token: str
    room_id: str
    event_id: str
    body: str
    media_uri: str
    media: bytes


@dataclass
class Upgrade:
    old: object  # conftest.OldRelease
    table: dict[str, tuple[int, int]]
    new_release: str
    postgres: harness.Postgres
    database: str
    prepared: harness.Prepared
    work: Path
    run: Path
    expect_encryption: bool
    schema_before: tools.DatabaseSchema
    data: OldData
    backup: tools.ScriptRun
    backup_env: dict
    schema_after: tools.DatabaseSchema
    synapse: tools.Synapse  # the new release, running

    @property
    def client(self) -> harness.Http:
        return self.synapse.client

    @property
    def url(self) -> str:
        return f"http://{self.client.netloc}"


def render_stage(work: Path, old_release: str) -> Path:
    """Renders the stage as the operator does for the old release and for
    the new one. Today the files do not depend on the release, so one fitted
    copy serves both Synapse runs; if that changes, this test must fit each
    render on its own."""
    instance = yaml.safe_load(EXAMPLE.read_text())
    new_release = instance["spec"]["release"]["synapse"]
    assert new_release == f"v{harness.SYNAPSE_VERSION}", (
        f"{EXAMPLE} runs {new_release}, hack/synapse.sh pins {harness.SYNAPSE_VERSION}"
    )
    instance["spec"]["release"]["synapse"] = old_release
    old_instance = work / "minimal-old-release.yaml"
    old_instance.write_text(yaml.safe_dump(instance, sort_keys=False))
    harness.render(old_instance, STAGE, work / "rendered-old")
    harness.render(EXAMPLE, STAGE, work / "rendered-new")
    for name in ("homeserver.yaml", "secrets.yaml", "log.yaml"):
        old_text = (work / "rendered-old" / name).read_text()
        new_text = (work / "rendered-new" / name).read_text()
        assert old_text == new_text, (
            f"caduceus renders {name} differently for {old_release} and {new_release}: "
            "fit each render separately in tests/upgrade/test_upgrade.py"
        )
    return work / "rendered-new"


def leave_data_behind(synapse: tools.Synapse, prepared: harness.Prepared, expect_encryption: bool) -> OldData:
    """A staff member on the old release: registered, a room, a message, a file."""
    client = synapse.client
    password = secrets.token_hex(12)
    user = harness.register_with_shared_secret(
        client, prepared.registration_shared_secret, "alice", password, admin=False
    )
    token = user["access_token"]
    room_id = client.ok(
        "POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "name": "ward 7 handover"}, token=token
    )["room_id"]
    assert tools.room_is_encrypted(client, token, room_id) == expect_encryption, (
        f"the old release created a room with encryption={not expect_encryption}"
    )
    body = "handover before the upgrade " + secrets.token_hex(4)
    event_id = client.ok(
        "PUT",
        f"/_matrix/client/v3/rooms/{harness.quote(room_id)}/send/m.room.message/{secrets.token_hex(8)}",
        {"msgtype": "m.text", "body": body},
        token=token,
    )["event_id"]
    media = ("ward 7 roster " + secrets.token_hex(16)).encode()
    media_uri = tools.upload_media(client.netloc, token, media, "text/plain", "roster.txt")
    return OldData(user["user_id"], password, token, room_id, event_id, body, media_uri, media)


def write_keys(keys: Path, prepared: harness.Prepared, run: Path) -> None:
    """The stage's keys Secret as its volume holds it (src/desired/keys.rs)."""
    keys.mkdir()
    secret_part = yaml.safe_load(prepared.secrets_file.read_text())
    (keys / "signing.key").write_bytes((run / "signing.key").read_bytes())
    (keys / "registration-shared-secret").write_text(secret_part["registration_shared_secret"])
    (keys / "macaroon-secret-key").write_text(secret_part["macaroon_secret_key"])
    (keys / "form-secret").write_text(secret_part["form_secret"])
    (keys / "database-password").write_text(secret_part["database"]["args"]["password"])


@pytest.fixture(scope="module")
def upgrade(components, postgres, old_synapse, tmp_path_factory):
    work = tmp_path_factory.mktemp("upgrade")
    table = tools.operator_table()
    new_release = f"v{harness.SYNAPSE_VERSION}"
    for release in (old_synapse.release, new_release):
        if release not in table:
            pytest.fail(f"the operator's schema table (src/plan/rollout/schema.rs) does not know {release}", pytrace=False)

    with tools.Stopwatch("render (caduceus render, both releases)"):
        rendered = render_stage(work, old_synapse.release)
    config = yaml.safe_load((rendered / "homeserver.yaml").read_text())
    # The hospital-baseline profile encrypts every new room; the smoke test
    # checks that when EXPECT_ENCRYPTION is true, as the operator's Job sets it.
    expect_encryption = config.get("encryption_enabled_by_default_for_room_type") == "all"
    assert expect_encryption, "examples/minimal.yaml (hospital-baseline) must encrypt every room"

    database = f"upgrade_{secrets.token_hex(6)}"
    postgres.create_database(database)  # UTF8, C collation, as hack/postgres.sh createdb
    run = work / "run"
    running: list[tools.Synapse] = []
    try:
        prepared = harness.prepare(rendered, run, postgres, database, None)

        old = tools.Synapse(prepared, run, old_synapse.python, f"old-{old_synapse.version}")
        running.append(old)
        with tools.Stopwatch(f"boot old Synapse {old_synapse.version} (fresh database)"):
            old.start()
        schema_before = tools.database_schema(postgres, database)
        with tools.Stopwatch("user, room, message, media on the old release"):
            data = leave_data_behind(old, prepared, expect_encryption)

        # The pre-upgrade backup, taken while the old release still runs (as
        # the operator's Job does), into a fresh local restic repository.
        keys = work / "keys"
        write_keys(keys, prepared, run)
        env = tools.backup_env(
            repository=work / "restic-repository",
            password=secrets.token_hex(16),
            postgres=postgres,
            database=database,
            stage=STAGE,
            reason=f"pre-upgrade:{new_release}",
            root=run,  # holds media/, the media store
            keys=keys,
            scratch=work,
        )
        with tools.Stopwatch("pre-upgrade backup (scripts/backup.sh)"):
            backup = tools.backup(env)
        if backup.returncode != 0 or backup.result.get("result") != "success":
            pytest.fail(f"the pre-upgrade backup failed, so no upgrade:\n{backup.describe()}", pytrace=False)

        with tools.Stopwatch(f"stop old Synapse {old_synapse.version}"):
            old.stop()
        new = tools.Synapse(prepared, run, sys.executable, f"new-{harness.SYNAPSE_VERSION}")
        running.append(new)
        with tools.Stopwatch(f"boot new Synapse {harness.SYNAPSE_VERSION} (migrates the schema)"):
            new.start()
        schema_after = tools.database_schema(postgres, database)

        yield Upgrade(
            old=old_synapse,
            table=table,
            new_release=new_release,
            postgres=postgres,
            database=database,
            prepared=prepared,
            work=work,
            run=run,
            expect_encryption=expect_encryption,
            schema_before=schema_before,
            data=data,
            backup=backup,
            backup_env=env,
            schema_after=schema_after,
            synapse=new,
        )
    finally:
        for synapse in running:
            synapse.stop()
        postgres.drop_database(database)


def test_the_old_release_created_the_database_at_its_schema(upgrade):
    old = upgrade.old
    schema, compat = upgrade.table[old.release]
    assert (old.schema, old.compat) == (schema, compat), (
        f"the operator's table says {old.release} is schema {schema} compat {compat}; "
        f"the installed Synapse {old.version} says {old.schema} compat {old.compat}"
    )
    before = upgrade.schema_before
    assert (before.version, before.compat) == (schema, compat), f"database after {old.release}: {before}"


def test_the_pre_upgrade_backup_holds_the_old_database_media_and_keys(upgrade):
    result = upgrade.backup.result
    assert result["result"] == "success" and result["reason"] == f"pre-upgrade:{upgrade.new_release}", result
    snapshot = result["snapshot"]
    snapshots = json.loads(tools.restic(upgrade.backup_env, "snapshots", "--json"))
    assert [s["short_id"] for s in snapshots] == [snapshot], f"one snapshot expected, found {snapshots}"
    assert set(snapshots[0]["tags"]) == {f"stage:{STAGE}", f"pre-upgrade:{upgrade.new_release}"}

    listed = set(tools.restic(upgrade.backup_env, "ls", snapshot).split())
    _server, media_id = upgrade.data.media_uri.removeprefix("mxc://").split("/", 1)
    media_files = [p for p in listed if p.startswith("/media/local_content/") and p.endswith(media_id[4:])]
    for path in ("/database/synapse.dump", "/keys/signing.key", "/keys/registration-shared-secret",
                 "/kubernetes/keys-secret.yaml"):
        assert path in listed, f"{path} missing from snapshot {snapshot}"
    assert media_files, f"the uploaded file {upgrade.data.media_uri} is missing from snapshot {snapshot}"

    # The dump is the database as the old release left it: schema before the migration.
    dump = upgrade.work / "pre-upgrade.dump"
    dump.write_bytes(
        subprocess.run(
            ["restic", "dump", snapshot, "/database/synapse.dump"],
            env=upgrade.backup_env, capture_output=True, timeout=tools.SCRIPT_TIMEOUT, check=True,
        ).stdout
    )
    restored = subprocess.run(
        [str(Path(tools.PG_BIN) / "pg_restore"), "--data-only", "--table=schema_version", "--file=-", str(dump)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    rows = [line.split("\t") for line in restored.splitlines() if line.startswith("X\t")]
    assert rows and int(rows[0][1]) == upgrade.schema_before.version, (
        f"schema_version in the pre-upgrade dump: {rows}, expected {upgrade.schema_before.version}"
    )


def test_the_new_release_migrated_the_schema_to_the_operators_table(upgrade):
    schema, compat = upgrade.table[upgrade.new_release]
    after = upgrade.schema_after
    assert (after.version, after.compat) == (schema, compat), (
        f"after the upgrade to {upgrade.new_release} the database is at schema {after.version} compat "
        f"{after.compat}; the operator's table says {schema} compat {compat}"
    )
    from synapse.storage.schema import SCHEMA_COMPAT_VERSION, SCHEMA_VERSION

    assert (SCHEMA_VERSION, SCHEMA_COMPAT_VERSION) == (schema, compat), "table and installed Synapse disagree"
    # This boot, not an earlier one, brought the database from the old schema to the new.
    assert upgrade.schema_before.version < after.version, f"no migration: {upgrade.schema_before} -> {after}"
    log = upgrade.synapse.log_text()
    for version in range(upgrade.schema_before.version + 1, after.version + 1):
        assert f"Applying schema deltas for v{version}" in log, f"no deltas for v{version} in the new release's log"


def test_the_smoke_test_script_passes_after_the_upgrade(upgrade):
    with tools.Stopwatch("smoke test (scripts/smoke-test.py)"):
        smoke = tools.smoke_test(upgrade.url, upgrade.prepared.registration_shared_secret, upgrade.expect_encryption)
    assert smoke.returncode == 0 and smoke.result == {"result": "success"}, smoke.describe()
    assert smoke.stdout.strip().splitlines()[-1] == '{"result": "success"}'
    assert upgrade.prepared.registration_shared_secret not in smoke.stdout + smoke.stderr


def test_the_old_users_session_messages_and_media_survive(upgrade):
    client, data = upgrade.client, upgrade.data
    # The session from before the upgrade still works (no forced re-login).
    assert client.ok("GET", "/_matrix/client/v3/account/whoami", token=data.token)["user_id"] == data.user_id
    token = harness.password_login(client, data.user_id, data.password)["access_token"]
    messages = tools.room_messages(client, token, data.room_id)
    found = [e for e in messages if e.get("event_id") == data.event_id]
    assert found and found[0]["content"]["body"] == data.body, f"the old message is gone: {messages}"
    assert tools.room_is_encrypted(client, token, data.room_id) == upgrade.expect_encryption
    assert tools.download_media(client.netloc, token, data.media_uri) == data.media


def test_the_rollback_the_table_allows_runs_on_the_migrated_database(upgrade):
    """A failed smoke test rolls back when the schema allows it: the old
    release's SCHEMA_VERSION is at least the database's compat version."""
    old_schema, _ = upgrade.table[upgrade.old.release]
    compat = tools.database_schema(upgrade.postgres, upgrade.database).compat
    assert old_schema >= compat, f"the table says {upgrade.old.release} cannot run on compat {compat}"
    upgrade.synapse.stop()
    rollback = tools.Synapse(upgrade.prepared, upgrade.run, upgrade.old.python, f"rollback-{upgrade.old.version}")
    try:
        with tools.Stopwatch(f"boot old Synapse {upgrade.old.version} again (rollback)"):
            rollback.start()
        token = harness.password_login(rollback.client, upgrade.data.user_id, upgrade.data.password)["access_token"]
        messages = tools.room_messages(rollback.client, token, upgrade.data.room_id)
        assert any(e.get("event_id") == upgrade.data.event_id for e in messages)
        # Running it changed nothing about the schema.
        assert tools.database_schema(upgrade.postgres, upgrade.database) == upgrade.schema_after
    finally:
        rollback.stop()
        # Leave the new release running for any check that follows.
        upgrade.synapse.start()

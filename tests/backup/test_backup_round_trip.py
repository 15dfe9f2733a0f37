"""The proof that a backup brings everything back: a real Synapse (rendered
by the operator) on real PostgreSQL gets users, a room, 2,000 messages and
an uploaded file; scripts/backup.sh backs it up while it runs; the database,
the media store and the keys are destroyed; scripts/restore.sh restores
them; Synapse boots again and everything is there, signed with the very same
key. The times and the repository size are printed as a benchmark (not
asserted)."""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import yaml

import harness
from backup_tools import Stage, backup, directory_size, restore, snapshot_ids
from conftest import query

EXAMPLE = harness.ROOT / "examples" / "minimal.yaml"
STAGE = "main"
MESSAGES = 2000
ROOMS = 4  # sent to in parallel, so the 2,000 messages take less time
KEY_FILES = ("registration-shared-secret", "macaroon-secret-key", "form-secret", "database-password")


def upload(client: harness.Http, token: str, data: bytes, content_type: str, filename: str) -> str:
    conn = http.client.HTTPConnection(client.netloc, timeout=harness.HTTP_TIMEOUT)
    try:
        conn.request(
            "POST",
            f"/_matrix/media/v3/upload?filename={urllib.parse.quote(filename)}",
            body=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        )
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, f"upload answered {response.status}: {body!r}"
        import json

        return json.loads(body)["content_uri"]
    finally:
        conn.close()


def download(client: harness.Http, token: str, mxc: str) -> bytes:
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    conn = http.client.HTTPConnection(client.netloc, timeout=harness.HTTP_TIMEOUT)
    try:
        conn.request(
            "GET", f"/_matrix/client/v1/media/download/{server}/{media_id}", headers={"Authorization": f"Bearer {token}"}
        )
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, f"download of {mxc} answered {response.status}: {body[:200]!r}"
        return body
    finally:
        conn.close()


def room_bodies(client: harness.Http, token: str, room: str) -> list[str]:
    """Every message body of a room, oldest first, paging back through it."""
    bodies: list[str] = []
    start = None
    while True:
        query_string = "dir=b&limit=1000" + (f"&from={urllib.parse.quote(start)}" if start else "")
        page = client.ok("GET", f"/_matrix/client/v3/rooms/{harness.quote(room)}/messages?{query_string}", token=token)
        for event in page["chunk"]:
            if event["type"] == "m.room.message":
                bodies.append(event["content"]["body"])
        if not page.get("end") or not page["chunk"]:
            return list(reversed(bodies))
        start = page["end"]


def test_backup_and_restore_bring_back_users_messages_media_and_the_signing_key(
    synapse_environment, postgres, tmp_path
):
    harness.render(EXAMPLE, STAGE, tmp_path / "rendered")
    database = f"synapse_backup_{secrets.token_hex(5)}"
    postgres.create_database(database)
    root = tmp_path / "root"  # the media store is root/media, as in the Job
    prepared = harness.prepare(tmp_path / "rendered", root, postgres, database, None)
    # The keys live apart, as the keys Secret does: Synapse reads its
    # signing key from there.
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.move(root / "signing.key", keys / "signing.key")
    for name in KEY_FILES:
        (keys / name).write_text(secrets.token_hex(32))
    prepared.config["signing_key_path"] = str(keys / "signing.key")
    prepared.homeserver.write_text(yaml.safe_dump(prepared.config, sort_keys=True))
    signing_key = (keys / "signing.key").read_bytes()
    stage = Stage(
        name=STAGE,
        repository=tmp_path / "repository",
        password=secrets.token_hex(16),
        database=database,
        postgres=postgres,
        root=root,
        keys=keys,
    )

    synapse = harness.Synapse(prepared, root)
    synapse.start()
    try:
        client = synapse.client
        secret = prepared.registration_shared_secret
        admin = harness.register_with_shared_secret(client, secret, "admin", "admin-password", admin=True)
        alice = harness.register_with_shared_secret(client, secret, "alice", "alice-password", admin=False)
        bob = harness.register_with_shared_secret(client, secret, "bob", "bob-password", admin=False)
        # 2,000 messages in a few seconds is over any rate limit; the admin
        # lifts it for alice, as an admin would for a bridge.
        client.ok(
            "POST",
            f"/_synapse/admin/v1/users/{harness.quote(alice['user_id'])}/override_ratelimit",
            {"messages_per_second": 0, "burst_count": 0},
            token=admin["access_token"],
        )
        rooms = []
        for n in range(ROOMS):
            room = client.ok(
                "POST",
                "/_matrix/client/v3/createRoom",
                {"preset": "private_chat", "name": f"Station {n + 1}", "invite": [bob["user_id"]]},
                token=alice["access_token"],
            )["room_id"]
            client.ok("POST", f"/_matrix/client/v3/join/{harness.quote(room)}", {}, token=bob["access_token"])
            rooms.append(room)
        sent = {
            room: [f"Schichtplan {r}.{n}: Übergabe um {n % 24:02d}:00" for n in range(MESSAGES // ROOMS)]
            for r, room in enumerate(rooms)
        }

        def send_all(room: str) -> None:
            for n, body in enumerate(sent[room]):
                client.ok(
                    "PUT",
                    f"/_matrix/client/v3/rooms/{harness.quote(room)}/send/m.room.message/txn{n}",
                    {"msgtype": "m.text", "body": body},
                    token=alice["access_token"],
                )

        started = time.monotonic()
        with ThreadPoolExecutor(ROOMS) as pool:
            list(pool.map(send_all, rooms))
        send_seconds = time.monotonic() - started
        room = rooms[0]
        image = os.urandom(300 * 1024)
        mxc = upload(client, bob["access_token"], image, "image/png", "befund.png")
        client.ok(
            "PUT",
            f"/_matrix/client/v3/rooms/{harness.quote(room)}/send/m.room.message/image",
            {"msgtype": "m.image", "body": "befund.png", "url": mxc},
            token=bob["access_token"],
        )
        sent[room].append("befund.png")
        for each in rooms:
            assert room_bodies(client, alice["access_token"], each) == sent[each]

        # The backup runs while Synapse runs, as the CronJob does.
        backed_up = backup(stage)
        assert backed_up.returncode == 0, backed_up.describe()
        assert backed_up.result["result"] == "success"
        snapshot = backed_up.result["snapshot"]
        assert snapshot_ids(stage) == {snapshot}
    finally:
        synapse.stop()

    repository_bytes = directory_size(stage.repository)
    dump_rows = query(postgres, database, "SELECT count(*) FROM events WHERE type = 'm.room.message'")[0][0]
    assert dump_rows == MESSAGES + 1

    # Disaster: the database, the media store and the keys are gone.
    postgres.create_database(database)
    shutil.rmtree(root / "media")
    (root / "media").mkdir()
    shutil.rmtree(keys)

    restored = restore(stage, CADUCEUS_SNAPSHOT="latest", CADUCEUS_KEYS_RESTORE="write")
    assert restored.returncode == 0, restored.describe()
    assert restored.result["snapshot"] == snapshot
    assert (keys / "signing.key").read_bytes() == signing_key, "the identical signing key is back"
    assert not (root / "database").exists() and not (root / ".caduceus-restore").exists()
    assert not (root / "media" / ".caduceus-restore").exists()
    # The data of e2e_one_time_keys_json is left out of every backup.
    assert query(postgres, database, "SELECT count(*) FROM e2e_one_time_keys_json") == [(0,)]

    synapse = harness.Synapse(prepared, root)
    synapse.start()
    try:
        client = synapse.client
        # The old session still works: its token is in the restored database.
        whoami = client.ok("GET", "/_matrix/client/v3/account/whoami", token=alice["access_token"])
        assert whoami["user_id"] == alice["user_id"]
        login = harness.password_login(client, "bob", "bob-password")
        assert login["user_id"] == bob["user_id"]
        users = client.ok("GET", "/_synapse/admin/v2/users?guests=false&limit=100", token=admin["access_token"])
        assert {u["name"] for u in users["users"]} >= {admin["user_id"], alice["user_id"], bob["user_id"]}
        for each in rooms:
            assert room_bodies(client, login["access_token"], each) == sent[each]
        assert download(client, login["access_token"], mxc) == image
    finally:
        synapse.stop()
        postgres.drop_database(database)

    print(
        f"\nbenchmark: {MESSAGES} messages + 1 image of {len(image) // 1024} KiB "
        f"(sent in {send_seconds:.1f} s): backup {backed_up.seconds:.2f} s, "
        f"restore {restored.seconds:.2f} s, repository {repository_bytes / 1024 / 1024:.2f} MiB, "
        f"{backed_up.result['bytesAdded'] / 1024 / 1024:.2f} MiB added by the first snapshot"
    )

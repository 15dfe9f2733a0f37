#!/usr/bin/env python3
"""A real end-to-end encrypted exchange against a Synapse reachable by URL.

Two throwaway users talk through a real Matrix crypto stack (matrix-nio with
vodozemac: Olm for the device-to-device key exchange, Megolm for the room):

    python tests/e2e/matrix_e2ee.py --url URL --shared-secret SECRET \
        [--server-name NAME] [--store DIR] [--timeout SECONDS] \
        [--expect-server-encryption] [--insecure]

1. register   two fresh users (e2e-alice-xxxx, e2e-bob-xxxx) through the
              shared-secret admin registration API;
2. login      both log in with a password (a new device each), with an
              encryption store, and upload their device and one-time keys;
3. encrypted_room
              alice creates a private room and invites bob, bob joins; the
              room must come out with m.room.encryption (the hospital profile
              enforces it). If the server did not set it, the run fails with
              --expect-server-encryption; without it, alice enables it and
              the output says "server_enforced_encryption": false;
4. e2ee_message
              each side fetches and verifies the other's device, alice sends a
              text with a random body (Olm-shares the Megolm key with bob's
              device first), bob decrypts it; the server's copy of the event
              is checked to be m.room.encrypted / m.megolm.v1.aes-sha2;
5. e2ee_reply bob replies encrypted, alice decrypts;
6. media      alice encrypts a random 100 KiB blob as an attachment (AES-CTR,
              as Element does), uploads the ciphertext to the media
              repository, sends the key in an encrypted m.file event; bob
              decrypts the event, downloads the ciphertext through the
              authenticated endpoint /_matrix/client/v1/media/download,
              checks the bytes and decrypts them back to the blob.

Every step has a deadline (the whole run --timeout, default 90 s) and the
client stops by itself. The last line on stdout is one JSON object:
{"result": "success", "room_id": ..., "plaintext_markers": [...], ...} or
{"result": "failure", "step": ..., "message": ...}; exit status 0 or 1.
Progress goes to stderr.

Checking that the database holds only ciphertext:

    psql -At -c "SELECT json FROM event_json WHERE room_id = '!room:server'" \
      | python tests/e2e/matrix_e2ee.py check-ciphertext --markers-file out.json

--markers-file is the client's output (the last line is read, its
"plaintext_markers" used), a JSON list, or one marker a line. The dump on
stdin is any text: one event JSON a line as above, or a whole pg_dump (then
only the marker check is exact; encrypted events are counted by pattern). It
asserts that no marker occurs anywhere in it and that at least
--min-encrypted (default 3: message, reply, file) m.room.encrypted events
with algorithm m.megolm.v1.aes-sha2 are there, and no m.room.message event.
It prints one JSON object like the client and exits 0 or 1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
import urllib.parse
from contextlib import asynccontextmanager

MEGOLM = "m.megolm.v1.aes-sha2"
MEDIA_SIZE = 100 * 1024


class StepFailed(Exception):
    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The exchange


class Run:
    def __init__(self, args):
        self.url = args.url.rstrip("/")
        self.secret = args.shared_secret
        self.server_name = args.server_name
        self.deadline = time.monotonic() + args.timeout
        self.store = args.store
        self.expect_server_encryption = args.expect_server_encryption
        self.ssl = False if args.insecure else None
        self.http = None  # aiohttp.ClientSession
        self.checks: dict[str, float] = {}
        self.step = "setup"
        self.clients = []
        self.result: dict = {}

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StepFailed(self.step, "the run's deadline passed")
        return left

    @asynccontextmanager
    async def timed(self, step: str):
        self.step = step
        log(f"step {step}")
        start = time.monotonic()
        yield
        self.checks[step] = round(time.monotonic() - start, 3)
        log(f"step {step} ok in {self.checks[step]} s")

    async def call(self, method: str, path: str, body=None, token=None, data=None, headers=None, expect=(200,)):
        """A raw client-server API request; returns (status, body bytes)."""
        import aiohttp

        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        kwargs = {"headers": h, "timeout": aiohttp.ClientTimeout(total=min(30.0, self.remaining()))}
        if body is not None:
            kwargs["json"] = body
        if data is not None:
            kwargs["data"] = data
        try:
            async with self.http.request(method, self.url + path, **kwargs) as response:
                payload = await response.read()
                if expect and response.status not in expect:
                    raise StepFailed(
                        self.step, f"{method} {path}: HTTP {response.status} {payload[:300].decode(errors='replace')}"
                    )
                return response.status, payload
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise StepFailed(self.step, f"{method} {path}: {type(error).__name__} {error}") from None

    async def call_json(self, *args, **kwargs) -> dict:
        _, payload = await self.call(*args, **kwargs)
        return json.loads(payload or b"{}")

    # -- 1. register --------------------------------------------------------

    async def register(self, localpart: str, password: str) -> dict:
        """Shared-secret registration (HMAC-SHA1 over nonce, user, password,
        admin flag), as scripts/smoke-test.py does."""
        path = "/_synapse/admin/v1/register"
        nonce = (await self.call_json("GET", path))["nonce"]
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join(part.encode() for part in (nonce, localpart, password, "notadmin")))
        return await self.call_json(
            "POST",
            path,
            body={"nonce": nonce, "username": localpart, "password": password, "admin": False, "mac": mac.hexdigest()},
        )

    # -- 2. login -------------------------------------------------------------

    async def login(self, user_id: str, password: str, store: str):
        from nio import AsyncClient, AsyncClientConfig, LoginResponse

        os.makedirs(store, exist_ok=True)
        config = AsyncClientConfig(
            encryption_enabled=True,
            store_sync_tokens=True,
            request_timeout=30,
            max_timeouts=2,
            max_limit_exceeded=3,
        )
        client = AsyncClient(self.url, user_id, store_path=store, config=config, ssl=self.ssl)
        self.clients.append(client)
        response = await asyncio.wait_for(client.login(password, device_name="caduceus-e2e"), self.remaining())
        if not isinstance(response, LoginResponse):
            raise StepFailed("login", f"{user_id}: {response}")
        if not client.olm:
            raise StepFailed("login", f"{user_id}: nio has no Olm machine (encryption support missing)")
        if client.should_upload_keys:
            await self.nio(client.keys_upload(), "keys_upload")
        return client

    async def nio(self, coroutine, what: str):
        """Awaits a nio request within the deadline; error responses fail."""
        from nio import ErrorResponse

        try:
            response = await asyncio.wait_for(coroutine, self.remaining())
        except asyncio.TimeoutError:
            raise StepFailed(self.step, f"{what}: timed out") from None
        if isinstance(response, ErrorResponse):
            raise StepFailed(self.step, f"{what}: {response}")
        return response

    async def sync(self, client, timeout_ms: int = 1000):
        from nio import SyncResponse

        response = await self.nio(
            client.sync(timeout=min(timeout_ms, int(self.remaining() * 1000)), full_state=False), "sync"
        )
        if not isinstance(response, SyncResponse):
            raise StepFailed(self.step, f"sync: {response}")
        return response

    async def sync_until(self, client, condition, what: str, room_id: str | None = None):
        """Syncs until condition(events) is true, events being this sync's
        timeline events in room_id (decrypted by nio where it could).
        Megolm events nio could not decrypt yet (the key arrives by to-device
        message, possibly later) are retried after each sync."""
        from nio import MegolmEvent

        pending = []
        while True:
            self.remaining()
            response = await self.sync(client)
            events = []
            if room_id and room_id in response.rooms.join:
                events = list(response.rooms.join[room_id].timeline.events)
            retried = []
            for event in pending + [e for e in events if isinstance(e, MegolmEvent)]:
                decrypted = _try_decrypt(client, event)
                if decrypted is None:
                    retried.append(event)
                else:
                    events.append(decrypted)
            pending = retried
            found = condition([e for e in events if not isinstance(e, MegolmEvent)])
            if found:
                return found
            if client.should_query_keys:
                await self.nio(client.keys_query(), "keys_query")
            if pending:
                log(f"{what}: {len(pending)} event(s) not decryptable yet, waiting for the room key")

    async def trust_all(self, client, other_user: str):
        """Fetches other_user's devices and verifies every one of them (the
        test's stand-in for a SAS/cross-signing verification), so nio shares
        room keys with them and accepts theirs as verified."""
        while True:
            self.remaining()
            await self.nio(client.keys_query(), "keys_query") if client.should_query_keys else None
            devices = list(client.device_store.active_user_devices(other_user))
            if devices:
                break
            # The other user's keys may not be known to the device list yet.
            client.olm.users_for_key_query.add(other_user)
            await self.sync(client, 500)
        for device in devices:
            if not client.verify_device(device) and not device.verified:
                raise StepFailed(self.step, f"could not verify {other_user} {device.id}")
        return [device.id for device in devices]

    async def send_text(self, client, room_id: str, body: str) -> str:
        response = await self.nio(
            client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body}), "room_send"
        )
        return response.event_id

    async def check_server_copy(self, token: str, room_id: str, event_id: str) -> None:
        """The server's copy of an event must be Megolm ciphertext."""
        event = await self.call_json(
            "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/{q(event_id)}", token=token
        )
        content = event.get("content", {})
        if event.get("type") != "m.room.encrypted" or content.get("algorithm") != MEGOLM:
            raise StepFailed(self.step, f"server copy of {event_id} is not Megolm ciphertext: {event.get('type')}")

    # -- the run --------------------------------------------------------------

    async def run(self) -> dict:
        import aiohttp

        suffix = secrets.token_hex(4)
        alice_name, bob_name = f"e2e-alice-{suffix}", f"e2e-bob-{suffix}"
        alice_pw, bob_pw = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        markers = []

        connector = aiohttp.TCPConnector(ssl=False) if self.ssl is False else None
        async with aiohttp.ClientSession(connector=connector) as self.http:
            async with self.timed("register"):
                alice_reg = await self.register(alice_name, alice_pw)
                bob_reg = await self.register(bob_name, bob_pw)
                alice_id, bob_id = alice_reg["user_id"], bob_reg["user_id"]
                server_name = self.server_name or alice_id.split(":", 1)[1]
                if alice_id != f"@{alice_name}:{server_name}":
                    raise StepFailed("register", f"registered {alice_id}, expected server name {server_name}")
                log(f"registered {alice_id} and {bob_id}")

            async with self.timed("login"):
                alice = await self.login(alice_id, alice_pw, os.path.join(self.store, alice_name))
                bob = await self.login(bob_id, bob_pw, os.path.join(self.store, bob_name))
                await self.sync(alice, 0)
                await self.sync(bob, 0)
                log(f"devices: alice {alice.device_id}, bob {bob.device_id}")

            async with self.timed("encrypted_room"):
                created = await self.nio(
                    alice.room_create(name=f"caduceus e2e {suffix}", invite=[bob_id]), "room_create"
                )
                room_id = created.room_id
                status, payload = await self.call(
                    "GET",
                    f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.encryption/",
                    token=alice.access_token,
                    expect=(200, 404),
                )
                server_enforced = status == 200
                if server_enforced:
                    algorithm = json.loads(payload).get("algorithm")
                    if algorithm != MEGOLM:
                        raise StepFailed("encrypted_room", f"server set m.room.encryption with {algorithm}")
                elif self.expect_server_encryption:
                    raise StepFailed("encrypted_room", "the server created the room without m.room.encryption")
                else:
                    log("WARNING: the server did NOT create the room encrypted; enabling it explicitly")
                    await self.nio(
                        alice.room_put_state(room_id, "m.room.encryption", {"algorithm": MEGOLM}),
                        "room_put_state m.room.encryption",
                    )
                await self.sync_until(bob, lambda _: room_id in bob.invited_rooms or room_id in bob.rooms, "invite")
                await self.nio(bob.join(room_id), "join")

                def bob_joined(_events):
                    room = alice.rooms.get(room_id)
                    return room is not None and bob_id in room.users and room.encrypted

                await self.sync_until(alice, bob_joined, "alice sees bob join", room_id)
                await self.sync_until(
                    bob, lambda _: room_id in bob.rooms and bob.rooms[room_id].encrypted, "bob sees encryption"
                )

            async with self.timed("e2ee_message"):
                alice_trusts = await self.trust_all(alice, bob_id)
                bob_trusts = await self.trust_all(bob, alice_id)
                marker = f"caduceus-e2e-message-{secrets.token_hex(16)}"
                markers.append(marker)
                message_id = await self.send_text(alice, room_id, marker)
                received = await self.sync_until(bob, text_with(marker), "bob decrypts", room_id)
                if not received.decrypted:
                    raise StepFailed("e2ee_message", "bob got the message, but not through decryption")
                await self.check_server_copy(bob.access_token, room_id, message_id)
                log(f"bob decrypted {message_id} (verified sender device: {received.verified})")

            async with self.timed("e2ee_reply"):
                reply = f"caduceus-e2e-reply-{secrets.token_hex(16)}"
                markers.append(reply)
                reply_id = await self.send_text(bob, room_id, reply)
                received = await self.sync_until(alice, text_with(reply), "alice decrypts", room_id)
                if not received.decrypted:
                    raise StepFailed("e2ee_reply", "alice got the reply, but not through decryption")
                await self.check_server_copy(alice.access_token, room_id, reply_id)

            async with self.timed("media"):
                media = await self.media(alice, bob, room_id, server_name, markers)

        return {
            "result": "success",
            "room_id": room_id,
            "plaintext_markers": markers,
            "users": [alice_id, bob_id],
            "devices": {alice_id: alice.device_id, bob_id: bob.device_id},
            "verified_devices": {alice_id: alice_trusts, bob_id: bob_trusts},
            "server_enforced_encryption": server_enforced,
            "event_ids": {"message": message_id, "reply": reply_id, "file": media["event_id"]},
            "media": media,
            "crypto": crypto_versions(),
            "checks": self.checks,
        }

    async def media(self, alice, bob, room_id: str, server_name: str, markers: list) -> dict:
        from nio import RoomEncryptedFile
        from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

        blob = secrets.token_bytes(MEDIA_SIZE)
        ciphertext, keys = encrypt_attachment(blob)
        filename = f"caduceus-e2e-file-{secrets.token_hex(16)}.bin"
        markers.append(filename)
        upload = await self.call_json(
            "POST",
            "/_matrix/media/v3/upload?filename=blob.bin",
            token=alice.access_token,
            data=ciphertext,
            headers={"Content-Type": "application/octet-stream"},
        )
        mxc = upload["content_uri"]
        media_server, media_id = urllib.parse.urlparse(mxc).netloc, urllib.parse.urlparse(mxc).path.lstrip("/")
        if media_server != server_name:
            raise StepFailed("media", f"uploaded to {mxc}, expected server name {server_name}")
        content = {
            "msgtype": "m.file",
            "body": filename,
            "info": {"size": len(blob), "mimetype": "application/octet-stream"},
            "file": {"url": mxc, "mimetype": "application/octet-stream", **keys},
        }
        sent = await self.nio(alice.room_send(room_id, "m.room.message", content), "room_send m.file")

        def file_event(events):
            for event in events:
                if isinstance(event, RoomEncryptedFile) and event.body == filename:
                    return event
            return None

        event = await self.sync_until(bob, file_event, "bob decrypts the file event", room_id)
        download = f"/_matrix/client/v1/media/download/{q(media_server)}/{q(media_id)}"
        # Without a token the authenticated endpoint must refuse.
        status, _ = await self.call("GET", download, expect=None)
        if status != 401:
            raise StepFailed("media", f"GET {download} without a token: HTTP {status}, expected 401")
        _, fetched = await self.call("GET", download, token=bob.access_token)
        if fetched != ciphertext:
            raise StepFailed("media", f"downloaded {len(fetched)} bytes differ from the {len(ciphertext)} uploaded")
        plain = decrypt_attachment(fetched, event.key["k"], event.hashes["sha256"], event.iv)
        if plain != blob:
            raise StepFailed("media", "the decrypted download differs from the blob")
        await self.check_server_copy(bob.access_token, room_id, sent.event_id)
        return {
            "mxc": mxc,
            "bytes": len(blob),
            "sha256_plain": hashlib.sha256(blob).hexdigest(),
            "sha256_stored": hashlib.sha256(ciphertext).hexdigest(),
            "event_id": sent.event_id,
            "unauthenticated_download_status": status,
        }

    async def close(self):
        for client in self.clients:
            try:
                await asyncio.wait_for(client.close(), 5)
            except Exception:  # noqa: BLE001  closing is best effort
                pass


def text_with(body: str):
    from nio import RoomMessageText

    def find(events):
        for event in events:
            if isinstance(event, RoomMessageText) and event.body == body:
                return event
        return None

    return find


def _try_decrypt(client, event):
    from nio import EncryptionError

    try:
        return client.decrypt_event(event)
    except EncryptionError:
        return None


def q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def crypto_versions() -> dict:
    from importlib.metadata import version

    return {"matrix-nio": version("matrix-nio"), "vodozemac": version("vodozemac")}


async def exchange(args) -> dict:
    temporary = None
    if not args.store:
        temporary = args.store = tempfile.mkdtemp(prefix="caduceus-e2e-store-")
    run = Run(args)
    try:
        return await asyncio.wait_for(run.run(), args.timeout + 5)
    except StepFailed as error:
        return {"result": "failure", "step": error.step, "message": str(error), "checks": run.checks}
    except asyncio.TimeoutError:
        return {"result": "failure", "step": run.step, "message": f"timed out after {args.timeout} s", "checks": run.checks}
    except Exception as error:  # noqa: BLE001  reported as the failing step
        return {"result": "failure", "step": run.step, "message": f"{type(error).__name__}: {error}", "checks": run.checks}
    finally:
        await run.close()
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)


# ---------------------------------------------------------------------------
# check-ciphertext


ENCRYPTED_PATTERN = re.compile(
    r'"type"\s*:\s*"m\.room\.encrypted"|"algorithm"\s*:\s*"m\.megolm\.v1\.aes-sha2"'
)


def read_markers(path: str) -> list[str]:
    text = open(path, encoding="utf-8").read()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for candidate in (text, lines[-1] if lines else ""):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict) and "plaintext_markers" in value:
            return list(value["plaintext_markers"])
        if isinstance(value, list):
            return [str(v) for v in value]
    return lines


def check_ciphertext(dump: str, markers: list[str], min_encrypted: int) -> dict:
    """Asserts on a text dump of the room's events (or of the database) that
    no plaintext marker occurs and that Megolm ciphertext events are there."""
    if not markers:
        return {"result": "failure", "step": "check-ciphertext", "message": "no markers given"}
    found = [marker for marker in markers if marker in dump]
    encrypted = plain_messages = parsed = 0
    for line in dump.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        parsed += 1
        content = event.get("content") or {}
        if event.get("type") == "m.room.encrypted" and content.get("algorithm") == MEGOLM:
            encrypted += 1
        if event.get("type") == "m.room.message":
            plain_messages += 1
    if parsed == 0:
        # Not one event JSON a line (e.g. pg_dump): count by pattern, each
        # Megolm event carries both the type and the algorithm once.
        hits = ENCRYPTED_PATTERN.findall(dump)
        encrypted = min(
            sum(1 for h in hits if "m.room.encrypted" in h), sum(1 for h in hits if "megolm" in h)
        )
    report = {
        "events_parsed": parsed,
        "megolm_events": encrypted,
        "plaintext_message_events": plain_messages,
        "markers_checked": len(markers),
        "dump_bytes": len(dump.encode()),
    }
    if found:
        return {"result": "failure", "step": "check-ciphertext", "message": f"plaintext found in the dump: {found}", **report}
    if encrypted < min_encrypted:
        return {
            "result": "failure",
            "step": "check-ciphertext",
            "message": f"{encrypted} Megolm events in the dump, expected at least {min_encrypted}",
            **report,
        }
    if plain_messages:
        return {
            "result": "failure",
            "step": "check-ciphertext",
            "message": f"{plain_messages} unencrypted m.room.message events in the dump",
            **report,
        }
    return {"result": "success", **report}


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check-ciphertext":
        parser = argparse.ArgumentParser(prog="matrix_e2ee.py check-ciphertext", description=__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--markers-file", required=True, help="client output JSON, a JSON list, or one marker a line")
        parser.add_argument("--min-encrypted", type=int, default=3)
        parser.add_argument("--dump", help="read the dump from this file instead of stdin")
        args = parser.parse_args(argv[1:])
        dump = open(args.dump, encoding="utf-8", errors="replace").read() if args.dump else sys.stdin.read()
        result = check_ciphertext(dump, read_markers(args.markers_file), args.min_encrypted)
    else:
        parser = argparse.ArgumentParser(prog="matrix_e2ee.py", description=__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--url", required=True, help="the homeserver's client URL, e.g. http://127.0.0.1:8008")
        parser.add_argument("--shared-secret", default=os.environ.get("REGISTRATION_SHARED_SECRET"),
                            help="registration_shared_secret (default $REGISTRATION_SHARED_SECRET); "
                            "write --shared-secret=VALUE when it may start with '-'")
        parser.add_argument("--server-name", help="expected server_name (default: taken from the registered user id)")
        parser.add_argument("--store", help="directory for the clients' encryption stores (default: a temporary one, removed)")
        parser.add_argument("--timeout", type=float, default=90.0, help="deadline for the whole run, seconds")
        parser.add_argument("--expect-server-encryption", action="store_true",
                            help="fail when the server creates the room unencrypted (instead of enabling it and "
                            'reporting "server_enforced_encryption": false)')
        parser.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
        args = parser.parse_args(argv)
        if not args.shared_secret:
            parser.error("--shared-secret or $REGISTRATION_SHARED_SECRET is required")
        # nio logs decryption hiccups as warnings; keep stdout for the result.
        import logging

        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
        result = asyncio.run(exchange(args))
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0 if result["result"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())

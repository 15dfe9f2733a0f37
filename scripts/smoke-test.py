#!/usr/bin/env python3
"""The smoke test a stage must pass after a rollout, run in the Synapse image
(standard library only) and by the real-Synapse tests.

It registers a throwaway admin user through the registration shared secret,
logs in, creates a room, sends a message and reads it back, then deactivates
and erases the user. Every step has a timeout; the last line printed (and
the pod's termination message) is one JSON object: {"result": "success"} or
{"result": "failure", "step": ..., "message": ...}.

Environment:
    SYNAPSE_URL                  e.g. http://umessenger-beta-synapse:8008
    REGISTRATION_SHARED_SECRET   the stage's shared secret
    EXPECT_ENCRYPTION            "true" when new rooms must come out encrypted
"""

import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 30


class StepFailed(Exception):
    def __init__(self, step, message):
        super().__init__(message)
        self.step = step


def env(name):
    """An environment variable the Job sets; its absence is a setup failure."""
    value = os.environ.get(name)
    if value is None:
        raise StepFailed("setup", f"environment variable {name!r} is not set")
    return value


def field(step, response, name):
    """A field of a Synapse response; its absence fails the step and says so."""
    if isinstance(response, dict) and name in response:
        return response[name]
    raise StepFailed(step, f"the response has no {name!r} field: {json.dumps(response)[:300]}")


def call(step, method, path, body=None, token=None):
    url = env("SYNAPSE_URL").rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        raise StepFailed(step, f"{method} {path}: HTTP {error.code} {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise StepFailed(step, f"{method} {path}: {error}") from None


def register(secret):
    nonce = field("register", call("register", "GET", "/_synapse/admin/v1/register"), "nonce")
    user = "smoke-" + secrets.token_hex(6)
    password = secrets.token_urlsafe(24)
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    for part in (nonce, user, password, "admin"):
        mac.update(part.encode())
        if part != "admin":
            mac.update(b"\x00")
    call("register", "POST", "/_synapse/admin/v1/register", {
        "nonce": nonce, "username": user, "password": password,
        "admin": True, "mac": mac.hexdigest(),
    })
    return user, password


def run():
    secret = env("REGISTRATION_SHARED_SECRET")
    expect_encryption = os.environ.get("EXPECT_ENCRYPTION", "false") == "true"
    user, password = register(secret)
    login = call("login", "POST", "/_matrix/client/v3/login", {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    })
    token, user_id = field("login", login, "access_token"), field("login", login, "user_id")
    try:
        room = field("create room", call("create room", "POST", "/_matrix/client/v3/createRoom",
                                         {"preset": "private_chat", "name": "caduceus smoke test"}, token),
                     "room_id")
        quoted = urllib.parse.quote(room)
        if expect_encryption:
            state = call("encryption", "GET", f"/_matrix/client/v3/rooms/{quoted}/state", token=token)
            if not any(event.get("type") == "m.room.encryption" for event in state):
                raise StepFailed("encryption", "a new room was not encrypted by default")
        body = "smoke test " + secrets.token_hex(4)
        txn = secrets.token_hex(8)
        event = field("send", call("send", "PUT", f"/_matrix/client/v3/rooms/{quoted}/send/m.room.message/{txn}",
                                   {"msgtype": "m.text", "body": body}, token), "event_id")
        deadline = time.monotonic() + TIMEOUT
        while True:
            messages = call("read", "GET", f"/_matrix/client/v3/rooms/{quoted}/messages?dir=b&limit=20",
                            token=token)
            if any(e.get("event_id") == event and e.get("content", {}).get("body") == body
                   for e in messages.get("chunk", [])):
                break
            if time.monotonic() > deadline:
                raise StepFailed("read", f"message {event} not found in the room")
            time.sleep(0.5)
    finally:
        call("deactivate", "POST", f"/_synapse/admin/v1/deactivate/{urllib.parse.quote(user_id)}",
             {"erase": True}, token)


def report(result):
    line = json.dumps(result)
    print(line, flush=True)
    # In a pod the kubelet provides the file; elsewhere nothing is created.
    if os.path.exists("/dev/termination-log"):
        with open("/dev/termination-log", "w") as log:
            log.write(line)


def main():
    try:
        run()
    except StepFailed as failure:
        report({"result": "failure", "step": failure.step, "message": str(failure)})
        return 1
    report({"result": "success"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

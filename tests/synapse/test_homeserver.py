"""Each case's rendered configuration on a real Synapse and PostgreSQL:
Synapse accepts it, reads the intended values, boots, and behaves as the
MessengerInstance says, checked from outside over HTTP."""

from __future__ import annotations

import re
import secrets
import time
import urllib.parse

from synapse.config.homeserver import HomeServerConfig

import harness
from harness import quote

ALL_PRESETS = {"private_chat", "trusted_private_chat", "public_chat"}


def login(running, **extra) -> dict:
    return harness.password_login(running.client, running.admin_user, running.admin_password, **extra)


def attribute(config, path: str):
    value = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def test_rendered_files_split_at_the_top_level(running):
    # Synapse replaces, not merges, a top-level key given in both files.
    both = set(running.prepared.rendered) & set(running.prepared.rendered_secrets)
    assert not both, f"keys in both homeserver.yaml and secrets.yaml: {both}"
    assert "database" in running.prepared.rendered_secrets
    assert set(running.prepared.rendered_secrets) == {
        "database", "registration_shared_secret", "macaroon_secret_key", "form_secret",
    }


def test_synapse_config_check_passes(running):
    result = harness.synapse_config_check(running.prepared)
    assert result.returncode == 0, result.stderr
    assert "Config parses OK!" in result.stdout
    read = harness.synapse_config_check(running.prepared, "read", "registration.session_lifetime")
    assert read.returncode == 0, read.stderr
    assert f"registration.session_lifetime: {running.expect.session_lifetime_ms}" in read.stdout


def test_synapse_reads_the_intended_settings(running):
    expect = running.expect
    config = HomeServerConfig.load_config(
        "", ["-c", str(running.prepared.homeserver), "-c", str(running.prepared.secrets_file)]
    )
    checks = {
        "server.server_name": running.prepared.server_name,
        "server.public_baseurl": f"https://{running.prepared.server_name}/",
        "registration.session_lifetime": expect.session_lifetime_ms,
        "retention.retention_enabled": expect.retention_enabled,
        "registration.enable_registration": expect.registration == "token",
        "registration.registration_requires_token": expect.registration == "token",
        "metrics.enable_metrics": True,
    }
    if expect.retention_enabled:
        checks["retention.retention_default_max_lifetime"] = expect.retention_default_max_ms
    if expect.baseline:
        for key, path, value in harness_baseline():
            if key not in expect.settings_keys:
                checks[path] = value
    checks.update(expect.extra)
    problems = []
    for path, wanted in checks.items():
        got = attribute(config, path)
        if got != wanted:
            problems.append(f"{path}: Synapse read {got!r}, expected {wanted!r}")
    database = config.database.databases[0].config
    if database["name"] != "psycopg2" or database["args"]["dbname"] != running.prepared.database:
        problems.append(f"database: {database['name']} {database['args'].get('dbname')}")
    presets = set(config.room.encryption_enabled_by_default_for_room_presets)
    if presets != (ALL_PRESETS if expect.encrypted else set()):
        problems.append(f"encryption presets: {presets}")
    whitelist = config.federation.federation_domain_whitelist
    wanted_whitelist = {"closed": set(), "allowlist": set(expect.allowlist), "open": None}[expect.federation]
    if (set(whitelist) if whitelist is not None else None) != wanted_whitelist:
        problems.append(f"federation whitelist: {whitelist}, expected {wanted_whitelist}")
    ids = sorted(p.idp_id for p in config.oidc.oidc_providers)
    if ids != sorted(f"oidc-{i}" for i in expect.oidc_ids):
        problems.append(f"OIDC providers: {ids}")
    for provider in config.oidc.oidc_providers:
        if provider.client_secret != running.prepared.oidc_secrets[provider.idp_id.removeprefix("oidc-")]:
            problems.append(f"{provider.idp_id}: the client secret is not the mounted file's")
    assert not problems, "\n".join(problems)


def harness_baseline():
    from expect import BASELINE_ATTRIBUTES

    return BASELINE_ATTRIBUTES


def test_admin_registration_and_admin_api(running):
    assert running.admin_user == f"@admin:{running.prepared.server_name}"
    token = login(running)["access_token"]
    version = running.client.ok("GET", "/_synapse/admin/v1/server_version", token=token)
    assert version["server_version"].startswith(harness.SYNAPSE_VERSION)
    # A wrong shared secret registers nobody.
    nonce = running.client.ok("GET", "/_synapse/admin/v1/register")["nonce"]
    status, body, _ = running.client.request(
        "POST",
        "/_synapse/admin/v1/register",
        {"nonce": nonce, "username": "mallory", "password": "x" * 12, "admin": True, "mac": "00" * 20},
    )
    assert status == 403, body


def test_login_token_lifetime_is_the_session_lifetime(running):
    before = int(time.time() * 1000)
    token = login(running)["access_token"]
    after = int(time.time() * 1000)
    conn = running.postgres.connect(running.prepared.database)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT valid_until_ms FROM access_tokens WHERE token = %s", (token,))
        (valid_until,) = cur.fetchone()
    conn.close()
    lifetime = running.expect.session_lifetime_ms
    if lifetime is None:
        assert valid_until is None, "the token expires though no session lifetime is set"
    else:
        assert before + lifetime <= valid_until <= after + lifetime, (valid_until, before, lifetime)


def test_short_sessions_expire(running):
    """Where the session lifetime is shorter than a refreshable token's (5m),
    the login answers it as `expires_in_ms`, and the token dies with it."""
    lifetime = running.expect.session_lifetime_ms
    if lifetime is None or lifetime > 60_000:
        return  # checked through the database above; waiting days is no test
    started = time.time()
    response = login(running, refresh_token=True)
    assert lifetime - 5_000 <= response["expires_in_ms"] <= lifetime
    token = response["access_token"]
    running.client.ok("GET", "/_matrix/client/v3/account/whoami", token=token)
    time.sleep(max(0.0, started + lifetime / 1000 + 1.5 - time.time()))
    status, body, _ = running.client.request("GET", "/_matrix/client/v3/account/whoami", token=token)
    assert status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN", body


def test_rooms_are_encrypted_as_configured_and_messages_round_trip(running):
    token = login(running)["access_token"]
    # A public room: `all` covers it, `invite` would not.
    room = running.client.ok(
        "POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat", "name": "Station 3B"}, token=token
    )["room_id"]
    status, state, _ = running.client.request(
        "GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.encryption/", token=token
    )
    if running.expect.encrypted:
        assert status == 200 and state["algorithm"] == "m.megolm.v1.aes-sha2", state
    else:
        assert status == 404, state

    # A second member reads what the first sent.
    password = secrets.token_hex(12)
    nurse = harness.register_with_shared_secret(
        running.client, running.prepared.registration_shared_secret, "nurse", password, admin=False
    )
    nurse_token = harness.password_login(running.client, "nurse", password)["access_token"]
    running.client.ok("POST", f"/_matrix/client/v3/rooms/{quote(room)}/invite", {"user_id": nurse["user_id"]}, token=token)
    running.client.ok("POST", f"/_matrix/client/v3/join/{quote(room)}", {}, token=nurse_token)
    text = f"Visite 14:00 {secrets.token_hex(4)}"
    event = running.client.ok(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/{secrets.token_hex(8)}",
        {"msgtype": "m.text", "body": text},
        token=token,
    )["event_id"]
    read = running.client.ok("GET", f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event)}", token=nurse_token)
    assert read["content"]["body"] == text
    messages = running.client.ok(
        "GET", f"/_matrix/client/v3/rooms/{quote(room)}/messages?dir=b&limit=20", token=nurse_token
    )
    assert text in [e["content"].get("body") for e in messages["chunk"]]


FEDERATION_PATHS = ["/_matrix/federation/v1/version", "/_matrix/key/v2/server"]


def test_federation_endpoints_follow_the_federation_mode(running):
    ports = running.prepared.ports
    # Never on the client listener, which the ingress exposes.
    for path in FEDERATION_PATHS:
        status, _, _ = running.client.request("GET", path)
        assert status == 404, f"{path} answers on the client port"
    if running.expect.federation == "closed":
        assert "federation" not in ports, "a federation listener runs though federation is closed"
        return
    federation = harness.Http(f"127.0.0.1:{ports['federation']}")
    version = federation.ok("GET", FEDERATION_PATHS[0])
    assert version["server"]["name"] == "Synapse"
    keys = federation.ok("GET", FEDERATION_PATHS[1])
    assert keys["server_name"] == running.prepared.server_name
    if running.expect.federation == "allowlist":
        # A server off the list is turned away before its signature is checked.
        status, body, _ = federation.request(
            "GET",
            f"/_matrix/federation/v1/query/profile?user_id={quote(running.admin_user)}",
            headers={"Authorization": 'X-Matrix origin="intruder.example.net",key="ed25519:a",sig="c2ln"'},
        )
        assert status == 403 and "Federation denied" in body.get("error", ""), body


def test_metrics_listener_answers(running):
    metrics = harness.Http(f"127.0.0.1:{running.prepared.ports['metrics']}")
    status, body, _ = metrics.request("GET", "/_synapse/metrics")
    assert status == 200 and "synapse" in str(body)


def test_registration_follows_the_registration_mode(running):
    client = running.client
    attempt = {"username": f"walkin{secrets.token_hex(3)}", "password": secrets.token_hex(12)}
    status, body, _ = client.request("POST", "/_matrix/client/v3/register", attempt)
    mode = running.expect.registration
    if mode in ("closed", "sso"):
        assert status == 403, body
    if mode == "token":
        # Every way in starts with a registration token.
        assert status == 401, body
        assert all(f["stages"][0] == "m.login.registration_token" for f in body["flows"]), body["flows"]
        admin = login(running)["access_token"]
        issued = client.ok("POST", "/_synapse/admin/v1/registration_tokens/new", {"uses_allowed": 1}, token=admin)
        stages = body["flows"][0]["stages"]
        auth = {"type": "m.login.registration_token", "token": issued["token"]}
        for stage in stages:
            request = {**attempt, "auth": {**(auth if stage == "m.login.registration_token" else {"type": stage}),
                                           "session": body["session"]}}
            status, done, _ = client.request("POST", "/_matrix/client/v3/register", request)
        assert status == 200 and done["user_id"].startswith(f"@{attempt['username']}:"), done
        # The token was for one account only.
        status, used, _ = client.request(
            "GET", f"/_matrix/client/v1/register/m.login.registration_token/validity?token={issued['token']}"
        )
        assert status == 200 and used["valid"] is False, used
    guest_status, guest, _ = client.request("POST", "/_matrix/client/v3/register?kind=guest", {})
    if running.expect.baseline:
        assert guest_status == 403, guest


def test_sso_login_through_the_identity_provider(running):
    if running.expect.registration != "sso":
        return
    client = running.client
    flows = client.ok("GET", "/_matrix/client/v3/login")["flows"]
    sso = next(f for f in flows if f["type"] == "m.login.sso")
    assert [p["id"] for p in sso["identity_providers"]] == [f"oidc-{i}" for i in running.expect.oidc_ids]
    idp = sso["identity_providers"][0]["id"]

    # As the ingress forwards it: the public host name, TLS ended before.
    ingress = {"Host": running.prepared.server_name, "X-Forwarded-For": "10.1.2.3", "X-Forwarded-Proto": "https"}
    redirect = urllib.parse.quote("https://app.example.org/after-login", safe="")
    status, _, headers = client.request(
        "GET", f"/_matrix/client/v3/login/sso/redirect/{idp}?redirectUrl={redirect}", headers=ingress
    )
    assert status == 302
    location = urllib.parse.urlparse(headers["Location"])
    query = dict(urllib.parse.parse_qsl(location.query))
    assert headers["Location"].startswith(running.oidc.issuer + "authorize")
    cookie = "; ".join(c.split(";")[0] for c in headers.get_all("Set-Cookie"))

    code = secrets.token_hex(8)
    running.oidc.codes[code] = {
        "nonce": query["nonce"],
        "claims": {"sub": "staff-4711", "preferred_username": "drhouse", "name": "Dr. House"},
    }
    status, page, _ = client.request(
        "GET",
        f"/_synapse/client/oidc/callback?code={code}&state={quote(query['state'])}",
        headers={**ingress, "Cookie": cookie},
    )
    assert running.oidc.token_requests and all(r["secret_ok"] for r in running.oidc.token_requests), (
        "Synapse did not present the client secret from its mounted file"
    )
    assert status == 200, page
    login_token = re.search(r"loginToken=([A-Za-z0-9_.~-]+)", str(page))
    assert login_token, page
    done = client.ok("POST", "/_matrix/client/v3/login", {"type": "m.login.token", "token": login_token.group(1)})
    assert done["user_id"] == f"@drhouse:{running.prepared.server_name}"
    profile = client.ok("GET", f"/_matrix/client/v3/profile/{quote(done['user_id'])}", token=done["access_token"])
    assert profile.get("displayname") == "Dr. House"

"""Rendering a stage with the operator's CLI, fitting the files to this
machine, and running a real Synapse on them.

Only what is bound to the pod is replaced: paths, listener ports and bind
addresses, the database connection, the placeholder secrets and, for OIDC,
the client secret's file and the issuer (a local stub, as no identity
provider is reachable from here). Everything else is what the operator
renders."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = "<generated-once-by-the-operator>"
SYNAPSE_VERSION = "1.163.2"
BOOT_TIMEOUT = 180  # seconds; a fresh database is migrated on first boot
HTTP_TIMEOUT = 30


def caduceus_binary() -> Path:
    return Path(os.environ.get("CADUCEUS_BIN", ROOT / "target" / "debug" / "caduceus"))


def render(instance: Path, stage: str, out: Path) -> None:
    """Runs `caduceus render -f FILE --stage NAME --homeserver-dir DIR`."""
    result = subprocess.run(
        [str(caduceus_binary()), "render", "-f", str(instance), "--stage", stage, "--homeserver-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"caduceus render failed for {instance} stage {stage}:\n{result.stderr}")
    for name in ("homeserver.yaml", "log.yaml", "secrets.yaml"):
        if not (out / name).is_file():
            raise AssertionError(f"caduceus render wrote no {name} into {out}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    host: str
    port: int
    superuser: str
    password: str

    def connect(self, dbname: str = "postgres"):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=self.superuser, password=self.password, dbname=dbname
        )

    def create_database(self, name: str) -> None:
        """A fresh UTF8 database with C collation (what hack/postgres.sh createdb does)."""
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(
                f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            )
        conn.close()

    def drop_database(self, name: str) -> None:
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@dataclass
class Prepared:
    """A rendered stage fitted to this machine."""

    rendered: dict  # homeserver.yaml as the operator rendered it
    rendered_secrets: dict  # secrets.yaml as rendered
    homeserver: Path
    secrets_file: Path
    config: dict  # homeserver.yaml as run
    server_name: str
    registration_shared_secret: str
    database: str
    ports: dict[str, int] = field(default_factory=dict)  # listener kind -> local port
    oidc_secrets: dict[str, str] = field(default_factory=dict)  # provider id -> client secret


def prepare(rendered_dir: Path, run_dir: Path, postgres: Postgres, database: str, oidc_issuer: str | None) -> Prepared:
    rendered = yaml.safe_load((rendered_dir / "homeserver.yaml").read_text())
    rendered_secrets = yaml.safe_load((rendered_dir / "secrets.yaml").read_text())
    config = json.loads(json.dumps(rendered))
    secret_part = json.loads(json.dumps(rendered_secrets))

    (run_dir / "media").mkdir(parents=True, exist_ok=True)
    shutil.copy(rendered_dir / "log.yaml", run_dir / "log.yaml")
    config["media_store_path"] = str(run_dir / "media")
    config["log_config"] = str(run_dir / "log.yaml")
    config["pid_file"] = str(run_dir / "homeserver.pid")
    config["signing_key_path"] = str(run_dir / "signing.key")
    write_signing_key(run_dir / "signing.key")

    ports: dict[str, int] = {}
    for listener in config["listeners"]:
        names = [n for r in listener.get("resources", []) for n in r["names"]]
        kind = "metrics" if listener["type"] == "metrics" else ("federation" if "federation" in names else "client")
        listener["port"] = ports[kind] = free_port()
        listener["bind_addresses"] = ["127.0.0.1"]

    oidc_secrets: dict[str, str] = {}
    for provider in config.get("oidc_providers", []):
        secret = secrets.token_hex(24)
        path = run_dir / "oidc" / provider["idp_id"] / Path(provider["client_secret_path"]).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secret + "\n")
        provider["client_secret_path"] = str(path)
        oidc_secrets[provider["idp_id"]] = secret
        if oidc_issuer is None:
            raise AssertionError("an OIDC provider needs the stub issuer")
        # The stub speaks plain HTTP on loopback, which Synapse only accepts
        # with the provider's metadata checks off.
        provider["issuer"] = oidc_issuer
        provider["skip_verification"] = True

    for key in ("registration_shared_secret", "macaroon_secret_key", "form_secret"):
        if secret_part.get(key) != PLACEHOLDER:
            raise AssertionError(f"secrets.yaml: {key} is not the render placeholder")
        secret_part[key] = secrets.token_hex(32)
    args = secret_part["database"]["args"]
    if args.get("password") != PLACEHOLDER:
        raise AssertionError("secrets.yaml: the database password is not the render placeholder")
    args.update(
        host=postgres.host, port=postgres.port, dbname=database, user=postgres.superuser, password=postgres.password
    )
    args.pop("sslmode", None)  # the loopback server has no TLS

    homeserver = run_dir / "homeserver.yaml"
    secrets_file = run_dir / "secrets.yaml"
    homeserver.write_text(yaml.safe_dump(config, sort_keys=True))
    secrets_file.write_text(yaml.safe_dump(secret_part, sort_keys=True))
    return Prepared(
        rendered=rendered,
        rendered_secrets=rendered_secrets,
        homeserver=homeserver,
        secrets_file=secrets_file,
        config=config,
        server_name=config["server_name"],
        registration_shared_secret=secret_part["registration_shared_secret"],
        database=database,
        ports=ports,
        oidc_secrets=oidc_secrets,
    )


def write_signing_key(path: Path) -> None:
    from signedjson.key import generate_signing_key, write_signing_keys

    with path.open("w") as f:
        write_signing_keys(f, [generate_signing_key("a_test")])


def synapse_config_check(prepared: Prepared, *read: str) -> subprocess.CompletedProcess:
    """`python -m synapse.config [read KEY] -c homeserver.yaml -c secrets.yaml`."""
    return subprocess.run(
        [sys.executable, "-m", "synapse.config", *read, "-c", str(prepared.homeserver), "-c", str(prepared.secrets_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )


class Synapse:
    """One Synapse process on a prepared stage."""

    def __init__(self, prepared: Prepared, run_dir: Path):
        self.prepared = prepared
        self.log_path = run_dir / "synapse.log"
        self.process: subprocess.Popen | None = None
        self.client = Http(f"127.0.0.1:{prepared.ports['client']}")

    def start(self) -> None:
        started = time.monotonic()
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
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
        while time.monotonic() - started < BOOT_TIMEOUT:
            if self.process.poll() is not None:
                raise AssertionError(f"Synapse exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, _, _ = self.client.request("GET", "/health", timeout=2)
                if status == 200:
                    self.boot_seconds = time.monotonic() - started
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise AssertionError(f"Synapse was not healthy within {BOOT_TIMEOUT} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Http:
    """A minimal JSON-over-HTTP client that never follows redirects."""

    def __init__(self, netloc: str):
        self.netloc = netloc

    def request(self, method: str, path: str, body=None, token: str | None = None, headers=None, timeout=HTTP_TIMEOUT):
        conn = http.client.HTTPConnection(self.netloc, timeout=timeout)
        all_headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            raw = response.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return response.status, parsed, response.headers
        finally:
            conn.close()

    def ok(self, method: str, path: str, body=None, token: str | None = None):
        status, parsed, _ = self.request(method, path, body, token)
        if status != 200:
            raise AssertionError(f"{method} {path} answered {status}: {parsed}")
        return parsed


def quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def register_with_shared_secret(client: Http, shared_secret: str, user: str, password: str, admin: bool) -> dict:
    """Synapse's admin registration: a nonce, then an HMAC-SHA1 over
    nonce, user, password and the admin flag with the shared secret."""
    nonce = client.ok("GET", "/_synapse/admin/v1/register")["nonce"]
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), user.encode(), password.encode(), b"admin" if admin else b"notadmin"]))
    return client.ok(
        "POST",
        "/_synapse/admin/v1/register",
        {"nonce": nonce, "username": user, "password": password, "admin": admin, "mac": mac.hexdigest()},
    )


def password_login(client: Http, user: str, password: str, **extra) -> dict:
    return client.ok(
        "POST",
        "/_matrix/client/v3/login",
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password, **extra},
    )

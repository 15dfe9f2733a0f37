"""A stub OpenID Connect provider on loopback: discovery, keys, and a token
endpoint that accepts a code only with the right client secret, so that a
login through it proves Synapse read the secret from its mounted file."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class OidcStub:
    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "stub"
        self.clients: dict[str, str] = {}  # client id -> secret
        self.codes: dict[str, dict] = {}  # code -> {"nonce", "claims"}
        self.token_requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = urllib.parse.urlparse(self.path).path
                if path == "/.well-known/openid-configuration":
                    self.reply(200, stub.discovery())
                elif path == "/jwks":
                    self.reply(200, {"keys": [stub.public_jwk()]})
                else:
                    self.reply(404, {"error": "not_found"})

            def do_POST(self):
                if urllib.parse.urlparse(self.path).path != "/token":
                    self.reply(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                client_id, secret = basic_credentials(self.headers.get("Authorization", ""))
                stub.token_requests.append({"client_id": client_id, "secret_ok": stub.clients.get(client_id) == secret})
                if client_id not in stub.clients or stub.clients[client_id] != secret:
                    self.reply(401, {"error": "invalid_client"})
                    return
                grant = stub.codes.pop(form.get("code", ""), None)
                if grant is None:
                    self.reply(400, {"error": "invalid_grant"})
                    return
                now = int(time.time())
                claims = {
                    "iss": stub.issuer,
                    "aud": client_id,
                    "iat": now,
                    "exp": now + 300,
                    "nonce": grant["nonce"],
                    **grant["claims"],
                }
                id_token = stub.sign({"alg": "RS256", "kid": stub.kid, "typ": "JWT"}, claims)
                self.reply(200, {"access_token": "stub-access", "token_type": "Bearer", "id_token": id_token})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "authorize",
            "token_endpoint": self.issuer + "token",
            "jwks_uri": self.issuer + "jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def public_jwk(self) -> dict:
        numbers = self.key.public_key().public_numbers()
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": b64url_int(numbers.n), "e": b64url_int(numbers.e)}

    def sign(self, header: dict, claims: dict) -> str:
        """A compact JWS with RS256 (RSASSA-PKCS1-v1_5 over SHA-256)."""
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_int(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def basic_credentials(header: str) -> tuple[str, str]:
    if not header.startswith("Basic "):
        return "", ""
    decoded = base64.b64decode(header[6:]).decode()
    client_id, _, secret = decoded.partition(":")
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)

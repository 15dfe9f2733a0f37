"""scripts/smoke-test.py, the check a stage must pass after a rollout: it
passes against a healthy Synapse and leaves no usable account behind, and
when something is wrong it fails fast with one clear JSON line (and exit
status 1) instead of hanging or passing. One pinned Synapse, booted on the
rendered examples/minimal.yaml, serves the module."""

from __future__ import annotations

import secrets
import sys

import pytest

import harness
import upgrade_tools as tools

EXAMPLE = harness.ROOT / "examples" / "minimal.yaml"
FAST = 30  # seconds: a failure must be reported well within one step's timeout


@pytest.fixture(scope="module")
def synapse(components, postgres, tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    harness.render(EXAMPLE, "main", work / "rendered")
    database = f"smoke_{secrets.token_hex(6)}"
    postgres.create_database(database)
    server = None
    try:
        prepared = harness.prepare(work / "rendered", work / "run", postgres, database, None)
        server = tools.Synapse(prepared, work / "run", sys.executable, "smoke")
        with tools.Stopwatch(f"boot Synapse {harness.SYNAPSE_VERSION} for the smoke-script checks"):
            server.start()
        server.database = database
        yield server
    finally:
        if server:
            server.stop()
        postgres.drop_database(database)


def url(server: tools.Synapse) -> str:
    return f"http://{server.client.netloc}"


def smoke_users(postgres, database: str) -> list[tuple[str, int]]:
    return tools.query(postgres, database, "SELECT name, deactivated FROM users WHERE name LIKE '@smoke-%%'")


def test_passes_and_deactivates_its_throwaway_user(synapse, postgres):
    before = smoke_users(postgres, synapse.database)
    run = tools.smoke_test(url(synapse), synapse.prepared.registration_shared_secret, expect_encryption=True)
    assert run.returncode == 0 and run.result == {"result": "success"}, run.describe()
    created = [row for row in smoke_users(postgres, synapse.database) if row not in before]
    assert len(created) == 1, f"one throwaway user expected, found {created}"
    assert created[0][1] == 1, f"the throwaway user {created[0][0]} was left active"
    assert synapse.prepared.registration_shared_secret not in run.stdout + run.stderr


def test_fails_clearly_when_synapse_is_unreachable():
    nowhere = f"http://127.0.0.1:{harness.free_port()}"  # nothing listens there
    run = tools.smoke_test(nowhere, "any-secret", expect_encryption=True, timeout=FAST)
    assert run.returncode == 1, run.describe()
    assert run.result["result"] == "failure" and run.result["step"] == "register", run.result
    assert "Connection refused" in run.result["message"], run.result
    assert "/_synapse/admin/v1/register" in run.result["message"], "the message names the request that failed"
    assert "Traceback" not in run.stderr, run.describe()


def test_fails_clearly_with_a_wrong_shared_secret(synapse, postgres):
    wrong = secrets.token_hex(32)
    before = smoke_users(postgres, synapse.database)
    run = tools.smoke_test(url(synapse), wrong, expect_encryption=True, timeout=FAST)
    assert run.returncode == 1, run.describe()
    assert run.result["result"] == "failure" and run.result["step"] == "register", run.result
    assert "HTTP 403" in run.result["message"], run.result
    assert smoke_users(postgres, synapse.database) == before, "a wrong secret must not create a user"
    for secret in (wrong, synapse.prepared.registration_shared_secret):
        assert secret not in run.stdout + run.stderr, "the smoke test printed a shared secret"
    assert "Traceback" not in run.stderr, run.describe()


def test_fails_clearly_without_the_shared_secret(synapse):
    run = tools.smoke_test(url(synapse), None, expect_encryption=True, timeout=FAST)
    assert run.returncode == 1, run.describe()
    assert run.result["result"] == "failure" and run.result["step"] == "setup", run.result
    assert "REGISTRATION_SHARED_SECRET" in run.result["message"], run.result

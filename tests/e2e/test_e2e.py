"""End to end on the real node, in the order a hospital lives it: the
instance comes up, staff exchange end-to-end encrypted messages and media, a
backup runs, a pod dies, beta takes the quarter's release with its
pre-upgrade backup and smoke test, production is promoted through its gates
by a git change, the instance is deleted without losing data, and a stage
is restored from its backup.

The scenarios share one instance and run in file order; each one names what
it waited for when it fails.
"""

import hashlib
import hmac
import json
import os
import pathlib
import secrets
import subprocess
import tempfile
import time

import pytest

from conftest import (
    HERE,
    INSTANCE,
    NAMESPACE,
    condition,
    get_json,
    http_get,
    http_json,
    job_result,
    kubectl,
    pods_summary,
    psql,
    required_env,
    secret_value,
    service_url,
    stage_status,
    wait_for,
    wait_ready,
)

OLD = "v1.150.0"
NEW = "v1.163.2"
STAGES = ("beta", "production")
# What the scenarios learn and later ones check.
STATE = {}


def synapse_url(stage):
    return service_url(f"{INSTANCE}-{stage}-synapse", "client")


def shared_secret(stage):
    return secret_value(f"{INSTANCE}-{stage}-keys", "registration-shared-secret")


def signing_key(stage):
    return secret_value(f"{INSTANCE}-{stage}-keys", "signing.key")


def admin_token(stage):
    """A throwaway admin registered with the stage's shared secret."""
    url = synapse_url(stage)
    _, body = http_json("GET", f"{url}/_synapse/admin/v1/register")
    nonce = body["nonce"]
    user, password = f"e2e-admin-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    mac = hmac.new(shared_secret(stage).encode(), digestmod=hashlib.sha1)
    mac.update(f"{nonce}\0{user}\0{password}\0admin".encode())
    status, body = http_json(
        "POST",
        f"{url}/_synapse/admin/v1/register",
        {"nonce": nonce, "username": user, "password": password, "admin": True, "mac": mac.hexdigest()},
    )
    assert status == 200, f"admin registration on {stage} failed: {status} {body}"
    return body["access_token"]


def encrypted_events(stage, room_id):
    token = admin_token(stage)
    status, body = http_json(
        "GET", f"{synapse_url(stage)}/_synapse/admin/v1/rooms/{room_id}/messages?dir=b&limit=100", token=token
    )
    assert status == 200, f"reading room {room_id} on {stage} failed: {status} {body}"
    return [event for event in body["chunk"] if event["type"] == "m.room.encrypted"]


def run_e2ee_client(stage):
    python = required_env("CADUCEUS_E2E_PYTHON")
    with tempfile.TemporaryDirectory() as store:
        result = subprocess.run(
            [
                python, str(HERE / "matrix_e2ee.py"),
                "--url", synapse_url(stage),
                "--shared-secret", shared_secret(stage),
                "--store", store,
                "--expect-server-encryption",
            ],
            capture_output=True,
            text=True,
            timeout=240,
        )
    lines = result.stdout.strip().splitlines()
    assert lines, f"the Matrix client printed nothing (exit {result.returncode}): {result.stderr[-3000:]}"
    outcome = json.loads(lines[-1])
    assert outcome["result"] == "success", f"end-to-end encrypted exchange failed: {outcome}\n{result.stderr[-3000:]}"
    return outcome


def pod_uid(name):
    return get_json("-n", NAMESPACE, "pod", name)["metadata"]["uid"]


def job_succeeded(name):
    job = get_json("-n", NAMESPACE, "job", name)
    return job.get("status", {}).get("succeeded", 0) >= 1


def train_moved_to(release):
    """instance.yaml with `spec.release` (the train, not production's pin)
    moved to release, as the quarter's commit does."""
    text = (HERE / "instance.yaml").read_text()
    train = f"  release:\n    synapse: {OLD}\n"
    assert train in text
    return text.replace(train, f"  release:\n    synapse: {release}\n", 1)


def apply_instance(document):
    kubectl("apply", "--server-side", "-f", "-", input=document)


@pytest.fixture(scope="module")
def instance(namespace):
    apply_instance((HERE / "instance.yaml").read_text())
    return wait_ready(stages={"beta": OLD, "production": OLD})


def test_the_instance_comes_up_ready_on_the_real_node(instance):
    assert condition(instance, "Ready")["status"] == "True"
    for stage in STAGES:
        assert stage_status(instance, stage)["phase"] == "Ready"
    # Every pod the operator made runs, under the namespace's restricted
    # Pod Security Standard (a violating pod would have been refused).
    labels = get_json("namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = get_json("-n", NAMESPACE, "pods", "-l", "app.kubernetes.io/managed-by=caduceus")["items"]
    running = [p["metadata"]["name"] for p in pods if p["status"]["phase"] == "Running"]
    for stage in STAGES:
        for workload in ("synapse-0", "db-0"):
            assert f"{INSTANCE}-{stage}-{workload}" in running, pods_summary()
        assert sum(name.startswith(f"{INSTANCE}-{stage}-element-web-") for name in running) == 2, pods_summary()
    for pod in pods:
        security = pod["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["seccompProfile"]["type"] == "RuntimeDefault"


def test_synapse_answers_through_its_service(instance):
    for stage in STAGES:
        status, body = http_get(f"{synapse_url(stage)}/_matrix/client/versions")
        assert status == 200
        assert "v1.11" in json.loads(body)["versions"], body


def test_element_web_serves_the_config_the_operator_rendered(instance):
    for stage in STAGES:
        configmap = get_json("-n", NAMESPACE, "configmap", f"{INSTANCE}-{stage}-element-web")
        rendered = json.loads(configmap["data"]["config.json"])
        status, body = http_get(f"{service_url(f'{INSTANCE}-{stage}-element-web', 'http')}/config.json")
        assert status == 200
        assert json.loads(body) == rendered
        assert rendered["default_server_config"]["m.homeserver"]["server_name"] == (
            "beta.e2e.test" if stage == "beta" else "e2e.test"
        )


def test_two_users_exchange_an_end_to_end_encrypted_message(instance):
    outcome = run_e2ee_client("beta")
    STATE["e2ee"] = outcome
    room_id = outcome["room_id"]
    # The server holds only ciphertext: no message text appears in any stored
    # event of the room, and the messages are megolm-encrypted events.
    stored = psql("beta", f"SELECT json FROM event_json WHERE room_id = '{room_id}'")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as markers:
        json.dump(outcome["plaintext_markers"], markers)
        markers.flush()
        check = subprocess.run(
            [required_env("CADUCEUS_E2E_PYTHON"), str(HERE / "matrix_e2ee.py"), "check-ciphertext",
             "--markers-file", markers.name],
            input=stored, capture_output=True, text=True, timeout=60,
        )
    assert check.returncode == 0, f"the server stores more than ciphertext: {check.stdout}{check.stderr}"
    for marker in outcome["plaintext_markers"]:
        assert marker not in stored


def test_media_upload_and_download(instance):
    media = STATE["e2ee"]["media"]
    assert media["bytes"] > 0 and media["unauthenticated_download_status"] == 401, media
    # The media store is the stage's volume.
    stored = kubectl("-n", NAMESPACE, "exec", f"{INSTANCE}-beta-synapse-0", "--", "find", "/media", "-type", "f")
    assert stored.strip(), "no media file on the stage's media volume"


def test_the_backup_cronjob_runs_in_a_pod_and_leaves_a_snapshot(instance):
    job = "e2e-beta-backup-manual"
    kubectl("-n", NAMESPACE, "create", "job", job, f"--from=cronjob/{INSTANCE}-beta-backup")
    wait_for(f"Job {job} to succeed", lambda: job_succeeded(job), 300)
    result = job_result(job)
    assert result and result["result"] == "success", result
    assert len(result["snapshot"]) >= 8
    STATE["manual_snapshot"] = result["snapshot"]


def test_a_deleted_synapse_pod_comes_back_with_its_key_and_data(instance):
    pod = f"{INSTANCE}-beta-synapse-0"
    key, uid = signing_key("beta"), pod_uid(pod)
    started = time.monotonic()
    kubectl("-n", NAMESPACE, "delete", "pod", pod, "--wait=false")
    wait_for("a new Synapse pod", lambda: pod_uid(pod) != uid, 120)
    wait_ready(stages={"beta": OLD})

    def serving():
        status, _ = http_get(f"{synapse_url('beta')}/_matrix/client/versions")
        return status == 200

    wait_for("Synapse to answer again", serving, 300)
    STATE["recovery_seconds"] = round(time.monotonic() - started, 1)
    assert signing_key("beta") == key
    assert len(encrypted_events("beta", STATE["e2ee"]["room_id"])) >= 2


def test_beta_upgrades_with_a_pre_upgrade_backup_and_a_smoke_test(instance):
    # The quarter's change in git: the release train moves; production keeps
    # its pin.
    STATE["manifest"] = train_moved_to(NEW)
    apply_instance(STATE["manifest"])
    status = wait_ready(stages={"beta": NEW, "production": OLD}, timeout=900)
    suffix = NEW.replace(".", "-")
    for job in (f"{INSTANCE}-beta-backup-{suffix}", f"{INSTANCE}-beta-smoke-{suffix}"):
        assert job_succeeded(job), f"{job} did not run to success\n{pods_summary()}"
    assert job_result(f"{INSTANCE}-beta-backup-{suffix}")["result"] == "success"
    history = stage_status(status, "beta").get("history", [])
    assert any(e["to"] == NEW and e["from"] == OLD and e["result"] == "Succeeded" for e in history), history
    # The messages survived the migration.
    assert len(encrypted_events("beta", STATE["e2ee"]["room_id"])) >= 2
    # Production waits for its gate: beta's soak on the new release.
    assert stage_status(status, "production")["release"]["synapse"] == OLD


def test_production_is_promoted_through_its_gates_by_a_git_change(instance, tmp_path):
    # The GitOps flow: `caduceus promote -f` moves the pin in the file git
    # holds; applying that file is what Argo CD would do.
    manifest = tmp_path / "instance.yaml"
    manifest.write_text(STATE["manifest"])
    def promote():
        return subprocess.run(
            [required_env("CADUCEUS_BIN"), "promote", INSTANCE, "--stage", "production", "-f", str(manifest)],
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": required_env("CADUCEUS_ADMIN_KUBECONFIG")},
            timeout=60,
        )

    # Right after beta's upgrade the soak gate is closed, and the CLI says
    # so rather than writing a promotion the operator would not carry out.
    first = promote()
    if first.returncode != 0:
        assert f"beta has run {NEW} Ready for" in first.stderr, first.stderr
        assert f"synapse: {OLD}" in manifest.read_text().split("- name: production", 1)[1]
        wait_for("beta's soak to allow the promotion", lambda: promote().returncode == 0, 120, interval=5)
    production = manifest.read_text().split("- name: production", 1)[1]
    assert f"synapse: {NEW}" in production and f"synapse: {OLD}" not in production, production
    apply_instance(manifest.read_text())
    status = wait_ready(stages={"beta": NEW, "production": NEW}, timeout=900)
    suffix = NEW.replace(".", "-")
    for job in (f"{INSTANCE}-production-backup-{suffix}", f"{INSTANCE}-production-smoke-{suffix}"):
        assert job_succeeded(job), f"{job} did not run to success\n{pods_summary()}"
    STATE["final_status"] = status


def test_deleting_the_instance_keeps_volumes_and_keys(instance):
    claims_before = {c["metadata"]["name"] for c in get_json("-n", NAMESPACE, "pvc")["items"]}
    keys = {stage: signing_key(stage) for stage in STAGES}
    kubectl("-n", NAMESPACE, "delete", "messengerinstance", INSTANCE, "--wait=true", timeout=180)
    wait_for(
        "the stage's pods to be gone",
        lambda: not get_json("-n", NAMESPACE, "pods", "-l", f"caduceus.dev/instance={INSTANCE}")["items"],
        300,
    )
    claims_after = {c["metadata"]["name"] for c in get_json("-n", NAMESPACE, "pvc")["items"]}
    assert claims_before <= claims_after, claims_before - claims_after
    for stage in STAGES:
        assert signing_key(stage) == keys[stage]
        for claim in ("media", "db-data", "backup-repository"):
            assert f"{INSTANCE}-{stage}-{claim}" in claims_after, claims_after
    STATE["keys"] = keys


def test_a_stage_is_restored_from_its_backup(namespace):
    # The disaster: beta's database and media are gone; its backup
    # repository and keys are what is left.
    lost = [f"{INSTANCE}-beta-media", f"{INSTANCE}-beta-db-data"]
    kubectl("-n", NAMESPACE, "delete", "pvc", *lost, "--wait=true", timeout=120)
    document = (HERE / "instance.yaml").read_text().replace(f"synapse: {OLD}", f"synapse: {NEW}")
    assert OLD not in document
    document = document.replace(
        "    - name: beta\n      serverName: beta.e2e.test\n",
        "    - name: beta\n      serverName: beta.e2e.test\n      restore: {snapshot: latest}\n",
    )
    apply_instance(document)
    status = wait_ready(stages={"beta": NEW, "production": NEW}, timeout=900)
    # Ready only once the restore is done: Synapse is held stopped until then.
    assert stage_status(status, "beta")["restore"]["phase"] == "Succeeded", stage_status(status, "beta")
    assert signing_key("beta") == STATE["keys"]["beta"]
    assert len(encrypted_events("beta", STATE["e2ee"]["room_id"])) >= 2
    status, _ = http_get(f"{synapse_url('beta')}/_matrix/client/versions")
    assert status == 200
    numbers = {
        "synapse_pod_recovery_seconds": STATE["recovery_seconds"],
        "e2ee_client_checks_seconds": STATE["e2ee"]["checks"],
        "backup_snapshot": STATE["manual_snapshot"],
    }
    (pathlib.Path(required_env("CADUCEUS_NODE_DIR")) / "e2e-numbers.json").write_text(json.dumps(numbers))

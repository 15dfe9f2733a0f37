"""The end-to-end tier: the operator, installed with its Helm chart, runs a
MessengerInstance on the real node (hack/node.sh) — pods, Jobs, Services and
DNS for real; nothing here sets a status.

Environment (hack/test.sh sets it; a missing part fails the run):
    CADUCEUS_ADMIN_KUBECONFIG   the node cluster's admin kubeconfig
    CADUCEUS_HELM               helm (hack/helm.sh)
    CADUCEUS_BIN                the caduceus CLI (promote, status)
    CADUCEUS_E2E_PYTHON         the venv python of the Matrix crypto client (hack/e2e-client.sh)
"""

import base64
import json
import os
import pathlib
import subprocess
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
OPERATOR_NAMESPACE = "caduceus-system"
NAMESPACE = "e2e"
INSTANCE = "e2e"


def required_env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the end-to-end tier through hack/test.sh (or hack/e2e.sh)")
    return value


def kubectl(*args, input=None, check=True, timeout=60):
    command = ["kubectl", "--kubeconfig", required_env("CADUCEUS_ADMIN_KUBECONFIG"), *args]
    result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def get_json(*args):
    return json.loads(kubectl("get", "-o", "json", *args))


def wait_for(description, predicate, timeout, interval=2.0):
    """Polls predicate until it returns a truthy value; fails with the last
    value it saw and what was being waited for."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except Exception as error:  # the object may not exist yet
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {description}; last: {last!r}")
        time.sleep(interval)


def instance_status(name=INSTANCE):
    return get_json("-n", NAMESPACE, "messengerinstance", name).get("status", {})


def condition(status, kind):
    for entry in status.get("conditions", []):
        if entry["type"] == kind:
            return entry
    return {}


def stage_status(status, stage):
    for entry in status.get("stages", []):
        if entry["name"] == stage:
            return entry
    return {}


def describe(name=INSTANCE):
    """What `caduceus status` shows: the message of a failed wait."""
    result = subprocess.run(
        [required_env("CADUCEUS_BIN"), "status", name, "-n", NAMESPACE],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": required_env("CADUCEUS_ADMIN_KUBECONFIG")},
        timeout=30,
    )
    return result.stdout + result.stderr


def wait_ready(name=INSTANCE, timeout=900, stages=None):
    """Waits until Ready=True for the current generation (and, if given,
    each stage runs the named Synapse release)."""

    def ready():
        instance = get_json("-n", NAMESPACE, "messengerinstance", name)
        status = instance.get("status", {})
        if status.get("observedGeneration") != instance["metadata"]["generation"]:
            return False
        if condition(status, "Ready").get("status") != "True":
            return False
        for stage, release in (stages or {}).items():
            entry = stage_status(status, stage)
            if entry.get("phase") != "Ready" or entry.get("release", {}).get("synapse") != release:
                return False
        return status

    try:
        return wait_for(f"MessengerInstance {name} to be Ready", ready, timeout, interval=3)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{describe(name)}\n{pods_summary()}") from None


def pods_summary():
    return kubectl("-n", NAMESPACE, "get", "pods,jobs,pvc", "-o", "wide", check=False)


def secret_value(name, key, namespace=NAMESPACE):
    secret = get_json("-n", namespace, "secret", name)
    return base64.b64decode(secret["data"][key]).decode()


def service_url(name, port_name):
    """The Service's cluster address: the host routes the Service range into
    the node's network namespace."""
    service = get_json("-n", NAMESPACE, "service", name)
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == port_name)
    return f"http://{service['spec']['clusterIP']}:{port}"


def http_get(url, timeout=10, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def http_json(method, url, body=None, token=None, timeout=15):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def psql(stage, sql):
    """Runs SQL in the stage's managed PostgreSQL pod, as Synapse's user."""
    return kubectl(
        "-n", NAMESPACE, "exec", f"{INSTANCE}-{stage}-db-0", "-c", "postgres", "--",
        "psql", "-h", "127.0.0.1", "-U", "synapse", "-d", "synapse", "-At", "-c", sql,
        timeout=60,
    )


def job_result(name):
    """The result line a finished Job's pod wrote as its termination message."""
    pods = get_json("-n", NAMESPACE, "pods", "-l", f"job-name={name}")["items"]
    for pod in pods:
        for container in pod.get("status", {}).get("containerStatuses", []):
            terminated = container.get("state", {}).get("terminated")
            if terminated and terminated.get("message"):
                return json.loads(terminated["message"].strip().splitlines()[-1])
    return None


@pytest.fixture(scope="session")
def operator():
    """The operator, installed the way a platform team installs it: the Helm
    chart, with the image overridden to the one built here."""
    helm = required_env("CADUCEUS_HELM")
    kubeconfig = required_env("CADUCEUS_ADMIN_KUBECONFIG")
    subprocess.run(
        [
            helm, "upgrade", "--install", "caduceus", str(ROOT / "helm" / "caduceus"),
            "--kubeconfig", kubeconfig,
            "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
            "--set", "image.repository=localhost/caduceus/operator",
            "--set", "image.tag=dev",
            "--set", "image.pullPolicy=Never",
            "--set", "logFormat=text",
            "--wait", "--timeout", "5m",
        ],
        check=True,
        timeout=400,
    )
    yield
    log = kubectl("-n", OPERATOR_NAMESPACE, "logs", "deployment/caduceus", "--tail", "400", check=False)
    (pathlib.Path(os.environ.get("CADUCEUS_NODE_DIR", "/tmp")) / "operator-e2e.log").write_text(log)


@pytest.fixture(scope="session")
def namespace(operator):
    """The suite's namespace, enforcing the restricted Pod Security Standard:
    a pod that is not restricted is refused at admission."""
    kubectl(
        "apply", "--server-side", "-f", "-",
        input=json.dumps({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }),
    )
    kubectl(
        "-n", NAMESPACE, "create", "secret", "generic", "e2e-backup-password",
        "--from-literal=password=e2e-backup-password-not-for-production",
        check=False,
    )
    return NAMESPACE

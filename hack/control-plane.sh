#!/usr/bin/env bash
# A real Kubernetes control plane (etcd and kube-apiserver, no kubelet or
# controller-manager) on loopback, for the tests and the demo.
#
#   hack/control-plane.sh start   start it (a no-op when already healthy); prints the env
#   hack/control-plane.sh stop    stop exactly what start started; the state directory stays
#   hack/control-plane.sh env     print the env of a running control plane
#
#   CADUCEUS_CP_DIR      state directory (default /tmp/caduceus-control-plane)
#   CADUCEUS_CP_NETNS    run etcd and the API server inside this network
#                        namespace (hack/node.sh sets it: the real node's)
#   CADUCEUS_CP_ADDRESS  the API server's address there (default 127.0.0.1);
#                        pods reach it through the `kubernetes` Service
#
# `start` writes two kubeconfigs: an admin, and the operator's identity
# (system:serviceaccount:caduceus-system:caduceus) bound to the ClusterRole the
# project ships, so a missing permission fails a test. Every request is
# audited to $CADUCEUS_CP_DIR/audit.log, so tests can count what the
# operator wrote. Without a controller-manager nothing garbage-collects and
# deleted namespaces stay Terminating.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${CADUCEUS_CP_DIR:-/tmp/caduceus-control-plane}"
# Paths go into the kubeconfigs and the env file, read from any directory.
[[ "$DIR" == /* ]] || DIR="$PWD/$DIR"
DIR="${DIR%/}"
NETNS="${CADUCEUS_CP_NETNS:-}"
ADDRESS="${CADUCEUS_CP_ADDRESS:-127.0.0.1}"
# The first address of the Service range: the `kubernetes` Service.
SERVICE_RANGE=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
OPERATOR_USER="system:serviceaccount:caduceus-system:caduceus"
# Node components of the real node (hack/node.sh), each under the identity
# Kubernetes' bootstrap RBAC grants its permissions to.
NODE_USERS=(
  "kubelet,system:node:caduceus-node,system:nodes"
  "kube-controller-manager,system:kube-controller-manager,"
  "kube-scheduler,system:kube-scheduler,"
  "kube-proxy,system:kube-proxy,"
  "coredns,caduceus:coredns,"
)
in_netns=()
[[ -n "$NETNS" ]] && in_netns=(nsenter --net="/var/run/netns/$NETNS")
# Marks a directory this script made, so `start` never wipes anything else.
MARKER=".caduceus-control-plane"
READY_TIMEOUT=60

die() {
  echo "hack/control-plane.sh: $*" >&2
  exit 1
}

# shellcheck source=hack/processes.sh
. "$ROOT/hack/processes.sh"

admin() {
  kubectl --kubeconfig "$DIR/admin.kubeconfig" --request-timeout=10s "$@"
}

healthy() {
  alive etcd && alive kube-apiserver && [[ -f "$DIR/env" ]] &&
    admin get --raw /readyz >/dev/null 2>&1
}

# Free loopback ports below the ephemeral range, so an outgoing connection
# cannot take one between picking it and binding it.
free_ports() { # count
  local low high port taken=" "
  read -r low high </proc/sys/net/ipv4/ip_local_port_range || low=32768
  ((low > 12000)) || die "the ephemeral port range starts at $low; no room for fixed ports below it"
  for _ in $(seq "$1"); do
    for _ in $(seq 100); do
      port=$((10000 + RANDOM % (low - 10000)))
      [[ "$taken" != *" $port "* ]] || continue
      # A refused connection means nothing listens there.
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        taken+="$port "
        echo "$port"
        continue 2
      fi
    done
    die "found no free loopback port"
  done
}

kubeconfig() { # file token
  cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: caduceus
  cluster:
    server: https://$ADDRESS:$API_PORT
    certificate-authority-data: $(base64 -w0 "$DIR/ca.crt")
users:
- name: user
  user:
    token: $2
contexts:
- name: caduceus
  context: {cluster: caduceus, user: user, namespace: default}
current-context: caduceus
KUBECONFIG
  chmod 600 "$1"
}

stop() {
  # The API server first, so nothing writes to a stopping etcd.
  stop_process kube-apiserver
  stop_process etcd
}

# Stops what this start launched; shows the end of the logs if the failure
# was in starting the processes rather than in setting them up.
BOOTING=""
fail_start() {
  local status=$?
  trap - EXIT
  if ((status != 0)); then
    for name in ${BOOTING:+etcd kube-apiserver}; do
      if [[ -s "$DIR/$name.log" ]]; then
        echo "--- last lines of $DIR/$name.log" >&2
        tail -n 25 "$DIR/$name.log" >&2
      fi
    done
    echo "hack/control-plane.sh: start failed; stopping what it started (state kept in $DIR)" >&2
    stop 2>/dev/null || true
  fi
  exit "$status"
}

step() { # description command...
  local what="$1"
  shift
  "$@" >/dev/null || die "$what failed"
}

start() {
  if healthy; then
    cat "$DIR/env"
    return
  fi
  # Processes left from an unhealthy run of this directory.
  stop 2>/dev/null || true

  local bin
  bin="$("$ROOT/hack/build-control-plane.sh" | tail -n1)" ||
    die "hack/build-control-plane.sh failed"
  [[ -x "$bin/kube-apiserver" && -x "$bin/etcd" ]] ||
    die "no kube-apiserver and etcd in '$bin' (from hack/build-control-plane.sh)"
  command -v kubectl >/dev/null || die "kubectl is required on PATH"
  command -v openssl >/dev/null || die "openssl is required on PATH"

  # A directory with audit-policy.yaml and tokens.csv is one this script made
  # before it wrote the marker.
  if [[ -d "$DIR" && -n "$(ls -A "$DIR")" && ! -e "$DIR/$MARKER" &&
    ! (-e "$DIR/audit-policy.yaml" && -e "$DIR/tokens.csv") ]]; then
    die "$DIR is not empty and was not made by this script; refusing to wipe it (set CADUCEUS_CP_DIR)"
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  touch "$DIR/$MARKER"
  trap fail_start EXIT

  local ports
  ports="$(free_ports 3)"
  ETCD_PORT="$(sed -n 1p <<<"$ports")"
  ETCD_PEER_PORT="$(sed -n 2p <<<"$ports")"
  API_PORT="$(sed -n 3p <<<"$ports")"

  # Our own OpenSSL config, so the certificates do not depend on the system's.
  cat >"$DIR/openssl.cnf" <<CNF
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:$ADDRESS,IP:$KUBERNETES_SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
CNF
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=caduceus-control-plane-ca" \
      -config "$DIR/openssl.cnf" -extensions ca -keyout "$DIR/ca.key" -out "$DIR/ca.crt" &&
      openssl req -new -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
        -config "$DIR/openssl.cnf" -keyout "$DIR/apiserver.key" -out "$DIR/apiserver.csr" &&
      openssl x509 -req -in "$DIR/apiserver.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 365 \
        -extfile "$DIR/openssl.cnf" -extensions server -out "$DIR/apiserver.crt" &&
      openssl genrsa -out "$DIR/sa.key" 2048 &&
      openssl rsa -in "$DIR/sa.key" -pubout -out "$DIR/sa.pub"
  } >"$DIR/openssl.log" 2>&1 || die "generating certificates and keys failed: $(cat "$DIR/openssl.log")"

  local admin_token operator_token
  admin_token="$(openssl rand -hex 32)"
  operator_token="$(openssl rand -hex 32)"
  # token,user,uid,"groups"
  cat >"$DIR/tokens.csv" <<TOKENS
$admin_token,caduceus-admin,caduceus-admin,"system:masters,system:authenticated"
$operator_token,$OPERATOR_USER,caduceus-operator,"system:serviceaccounts,system:serviceaccounts:caduceus-system,system:authenticated"
TOKENS
  if [[ -n "$NETNS" ]]; then
    local entry component user group token
    for entry in "${NODE_USERS[@]}"; do
      IFS=, read -r component user group <<<"$entry"
      token="$(openssl rand -hex 32)"
      echo "$token,$user,$user,\"${group:+$group,}system:authenticated\"" >>"$DIR/tokens.csv"
      echo "$component $token" >>"$DIR/node-tokens"
    done
    chmod 600 "$DIR/node-tokens"
  fi
  chmod 600 "$DIR/tokens.csv"

  cat >"$DIR/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
POLICY

  BOOTING=1
  # The data is thrown away, and fsync dominates write latency on CI disks.
  launch etcd "${in_netns[@]}" "$bin/etcd" \
    --name caduceus \
    --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "caduceus=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync \
    --log-level warn

  # Blocking audit: an event is in the log before its response returns, so a
  # test can read it right away. On loopback, no endpoint reconciler:
  # Endpoints reject the loopback advertise address, and nothing in the
  # cluster needs the `kubernetes` Service; in the node's namespace the API
  # server listens on the node's address too and keeps the Service's
  # endpoints, so pods reach it. OwnerReferencesPermissionEnforcement, as on
  # OpenShift and hardened clusters: an owner reference that blocks the
  # owner's deletion needs `update` on the owner's finalizers, which the
  # operator's role does not grant.
  local bind_address=127.0.0.1 reconciler=none
  [[ -n "$NETNS" ]] && bind_address=0.0.0.0 reconciler=lease
  launch kube-apiserver "${in_netns[@]}" "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$bind_address" \
    --advertise-address "$ADDRESS" \
    --secure-port "$API_PORT" \
    --tls-cert-file "$DIR/apiserver.crt" \
    --tls-private-key-file "$DIR/apiserver.key" \
    --client-ca-file "$DIR/ca.crt" \
    --token-auth-file "$DIR/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-cluster-ip-range "$SERVICE_RANGE" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$DIR/sa.pub" \
    --service-account-signing-key-file "$DIR/sa.key" \
    --audit-policy-file "$DIR/audit-policy.yaml" \
    --audit-log-path "$DIR/audit.log" \
    --audit-log-format json \
    --audit-log-maxsize 200 \
    --audit-log-mode blocking \
    --endpoint-reconciler-type "$reconciler" \
    --enable-admission-plugins OwnerReferencesPermissionEnforcement,NodeRestriction \
    --v 1

  kubeconfig "$DIR/admin.kubeconfig" "$admin_token"
  kubeconfig "$DIR/operator.kubeconfig" "$operator_token"
  if [[ -n "$NETNS" ]]; then
    local component token
    while read -r component token; do
      kubeconfig "$DIR/$component.kubeconfig" "$token"
    done <"$DIR/node-tokens"
  fi

  local deadline=$((SECONDS + READY_TIMEOUT))
  until admin get --raw /readyz >/dev/null 2>&1; do
    alive etcd || die "etcd exited (log: $DIR/etcd.log)"
    alive kube-apiserver || die "kube-apiserver exited (log: $DIR/kube-apiserver.log)"
    ((SECONDS < deadline)) || die "kube-apiserver was not ready within $READY_TIMEOUT s (https://127.0.0.1:$API_PORT/readyz)"
    sleep 0.5
  done
  BOOTING=""

  # On the real node the operator is installed the way users install it
  # (its Helm chart); here the tests run it in-process under the shipped role.
  if [[ -z "$NETNS" ]]; then
    step "creating namespace caduceus-system" admin create namespace caduceus-system
    step "applying crds/ (server-side)" admin apply --server-side -f "$ROOT/crds/"
    step "applying config/rbac (server-side)" admin apply --server-side -k "$ROOT/config/rbac"
    step "waiting for the CRD messengerinstances.caduceus.dev to be Established" \
      admin wait --for condition=Established --timeout 60s crd/messengerinstances.caduceus.dev
  fi

  # Written last: its presence means the control plane is set up.
  {
    printf 'export CADUCEUS_CP_DIR=%q\n' "$DIR"
    printf 'export CADUCEUS_ADMIN_KUBECONFIG=%q\n' "$DIR/admin.kubeconfig"
    printf 'export CADUCEUS_OPERATOR_KUBECONFIG=%q\n' "$DIR/operator.kubeconfig"
    printf 'export CADUCEUS_AUDIT_LOG=%q\n' "$DIR/audit.log"
    printf 'export CADUCEUS_OPERATOR_USER=%q\n' "$OPERATOR_USER"
  } >"$DIR/env.tmp"
  mv "$DIR/env.tmp" "$DIR/env"
  trap - EXIT
  cat "$DIR/env"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    healthy || die "no healthy control plane runs from $DIR; run 'hack/control-plane.sh start'"
    cat "$DIR/env"
    ;;
  *)
    echo "usage: hack/control-plane.sh start|stop|env   (state in \$CADUCEUS_CP_DIR, default /tmp/caduceus-control-plane)" >&2
    exit 2
    ;;
esac

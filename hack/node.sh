#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the end-to-end
# tier and the demo: its own etcd and kube-apiserver (hack/control-plane.sh),
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy and CoreDNS of
# the same release (hack/build-control-plane.sh node), containerd and runc
# and the CNI plugins from Debian, and the images built here (hack/images.sh).
#
#   hack/node.sh start   start it (a no-op when already healthy); prints the env
#   hack/node.sh stop    stop exactly what start started and undo every host change
#   hack/node.sh env     print the env of a running node
#
#   CADUCEUS_NODE_DIR    state directory (default /tmp/caduceus-node)
#
# Everything runs inside a network namespace this script creates
# (caduceus-node): the node's address, the pod bridge, every pod and Service
# address and kube-proxy's iptables rules live only there. The host gets two
# routes into it (pods and Services), so tests reach Services directly. The
# namespace has no default route and CoreDNS serves the cluster domain only:
# nothing in the cluster reaches or resolves anything off this machine.
#
# Storage: a pool of hostPath PersistentVolumes under the state directory
# (Retain), bound by the controller-manager to claims that name no class.
#
# Needs root. What this machine lacks, and what works around it:
#   - no CAP_SYS_RESOURCE: containerd's CRI restricts oom_score_adj instead of
#     lowering it (runc otherwise fails "can't get final child's PID from pipe")
#     and the kubelet leaves its own oom_score_adj alone;
#   - cgroup v1: the kubelet runs with failCgroupV1: false and the cgroupfs driver;
#   - swap is tolerated (failSwapOn: false);
#   - no registry: every image, the pause image too (Debian's catatonit), is
#     built here by hack/images.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${CADUCEUS_NODE_DIR:-/tmp/caduceus-node}"
[[ "$DIR" == /* ]] || DIR="$PWD/$DIR"
DIR="${DIR%/}"
CACHE="${CADUCEUS_CACHE:-$HOME/.cache/caduceus}"
NETNS=caduceus-node
NODE_NAME=caduceus-node
HOST_VETH=cdc-host
NODE_VETH=cdc-node
HOST_ADDRESS=172.30.255.1
NODE_ADDRESS=172.30.255.2
POD_RANGE=10.244.0.0/24
SERVICE_RANGE=10.96.0.0/16
CLUSTER_DOMAIN=cluster.local
# Built by hack/images.sh (images/pause).
PAUSE_IMAGE=localhost/caduceus/pause:catatonit
VOLUMES=40
MARKER=".caduceus-node"
CP_DIR="$DIR/control-plane"
CONTAINERD_SOCK="$DIR/containerd/containerd.sock"
READY_TIMEOUT=180
# Debian packages the node needs.
PACKAGES=(containerd runc containernetworking-plugins iptables conntrack)
CNI_BIN=/usr/lib/cni

die() {
  echo "hack/node.sh: $*" >&2
  exit 1
}

# nsenter, not `ip netns exec`: that one also remounts /sys, which hides the
# cgroup mounts the kubelet and runc need.
in_node() { nsenter --net="/var/run/netns/$NETNS" "$@"; }

admin() {
  kubectl --kubeconfig "$CP_DIR/admin.kubeconfig" --request-timeout=15s "$@"
}

# shellcheck source=hack/processes.sh
. "$ROOT/hack/processes.sh"

healthy() {
  [[ -f "$DIR/env" ]] && ip netns list 2>/dev/null | grep -qw "^$NETNS" &&
    alive containerd && alive kubelet && alive kube-controller-manager &&
    alive kube-scheduler && alive kube-proxy && alive coredns &&
    admin get --raw /readyz >/dev/null 2>&1
}

# --- host changes, each recorded so stop undoes exactly it ---------------

record() { echo "$*" >>"$DIR/host-changes"; }

ensure_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
  # Debian starts no containerd here (no init system); if one runs, it is
  # not ours and we leave it alone: ours has its own socket and state.
}

setup_network() {
  ip netns add "$NETNS"
  record netns
  ip link add "$HOST_VETH" type veth peer name "$NODE_VETH"
  record veth
  ip link set "$NODE_VETH" netns "$NETNS"
  ip addr add "$HOST_ADDRESS/30" dev "$HOST_VETH"
  ip link set "$HOST_VETH" up
  in_node ip addr add "$NODE_ADDRESS/30" dev "$NODE_VETH"
  in_node ip link set "$NODE_VETH" up
  in_node ip link set lo up
  # Pods and Services are reached from the host through the node.
  ip route add "$POD_RANGE" via "$NODE_ADDRESS"
  record route "$POD_RANGE"
  ip route add "$SERVICE_RANGE" via "$NODE_ADDRESS"
  record route "$SERVICE_RANGE"
  # Inside the namespace only: routing between the bridge and the node, and
  # bridged pod traffic through kube-proxy's rules.
  in_node sysctl -qw net.ipv4.ip_forward=1
  in_node sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null ||
    { modprobe br_netfilter 2>/dev/null && in_node sysctl -qw net.bridge.bridge-nf-call-iptables=1; } ||
    die "cannot enable net.bridge.bridge-nf-call-iptables (br_netfilter): Services would not reach pods on the same bridge"
  # When that sysctl is global rather than per namespace, the host's value
  # changed too: restore it on stop.
  if [[ "$(sysctl -n net.bridge.bridge-nf-call-iptables)" != "$HOST_BRIDGE_NF" ]]; then
    record sysctl net.bridge.bridge-nf-call-iptables "$HOST_BRIDGE_NF"
  fi
}

undo_host_changes() {
  [[ -f "$DIR/host-changes" ]] || return 0
  local what arg value
  # Reverse order: last change first.
  tac "$DIR/host-changes" | while read -r what arg value; do
    case "$what" in
      route) ip route del "$arg" via "$NODE_ADDRESS" 2>/dev/null || true ;;
      veth) ip link del "$HOST_VETH" 2>/dev/null || true ;;
      netns) ip netns del "$NETNS" 2>/dev/null || true ;;
      sysctl) sysctl -qw "$arg=$value" || true ;;
    esac
  done
  rm -f "$DIR/host-changes"
}

# --- containerd -----------------------------------------------------------

start_containerd() {
  mkdir -p "$DIR/containerd" "$DIR/cni/net.d"
  cat >"$DIR/containerd/config.toml" <<TOML
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri.v1alpha2"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine lacks CAP_SYS_RESOURCE: never lower oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
TOML
  # Only the pod bridge: every pod is on it, the node routes for them.
  cat >"$DIR/cni/net.d/10-caduceus.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "caduceus",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_RANGE"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$DIR/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  launch containerd nsenter --net="/var/run/netns/$NETNS" containerd --config "$DIR/containerd/config.toml"
  for _ in $(seq 100); do
    ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1 && return
    alive containerd || die "containerd exited (log: $DIR/containerd.log)"
    sleep 0.2
  done
  die "containerd did not answer on $CONTAINERD_SOCK (log: $DIR/containerd.log)"
}

import_images() {
  "$ROOT/hack/images.sh" import "$CONTAINERD_SOCK" >&2 ||
    die "hack/images.sh import failed: the node has no images to run"
}

# --- Kubernetes node components ------------------------------------------

start_kubelet() {
  mkdir -p "$DIR/kubelet"
  # No upstream resolvers: pods resolve the cluster domain only.
  : >"$DIR/kubelet/resolv.conf"
  cat >"$DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 on this machine; swap tolerated.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
# No CAP_SYS_RESOURCE: the kubelet keeps its own oom_score_adj.
oomScoreAdj: 0
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
  x509: {}
authorization: {mode: AlwaysAllow}
address: $NODE_ADDRESS
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$NODE_ADDRESS]
resolvConf: $DIR/kubelet/resolv.conf
maxPods: 110
podPidsLimit: 4096
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 1%
syncFrequency: 10s
fileCheckFrequency: 0s
staticPodPath: ""
YAML
  launch kubelet nsenter --net="/var/run/netns/$NETNS" "$BIN/kubelet" \
    --config "$DIR/kubelet/config.yaml" \
    --kubeconfig "$CP_DIR/kubelet.kubeconfig" \
    --root-dir "$DIR/kubelet/root" \
    --cert-dir "$DIR/kubelet/pki" \
    --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_ADDRESS" \
    --v 1
}

start_control_loops() {
  launch kube-controller-manager nsenter --net="/var/run/netns/$NETNS" "$BIN/kube-controller-manager" \
    --kubeconfig "$CP_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$CP_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$CP_DIR/kube-controller-manager.kubeconfig" \
    --service-account-private-key-file "$CP_DIR/sa.key" \
    --root-ca-file "$CP_DIR/ca.crt" \
    --use-service-account-credentials \
    --service-cluster-ip-range "$SERVICE_RANGE" \
    --cluster-name caduceus \
    --leader-elect=false \
    --bind-address 127.0.0.1 \
    --secure-port 10257 \
    --v 1
  launch kube-scheduler nsenter --net="/var/run/netns/$NETNS" "$BIN/kube-scheduler" \
    --kubeconfig "$CP_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$CP_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$CP_DIR/kube-scheduler.kubeconfig" \
    --leader-elect=false \
    --bind-address 127.0.0.1 \
    --secure-port 10259 \
    --v 1
  cat >"$DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_RANGE
hostnameOverride: $NODE_NAME
bindAddress: $NODE_ADDRESS
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clientConnection:
  kubeconfig: $CP_DIR/kube-proxy.kubeconfig
# The conntrack table size is the host's; leave it.
conntrack:
  maxPerCore: 0
YAML
  launch kube-proxy nsenter --net="/var/run/netns/$NETNS" "$BIN/kube-proxy" --config "$DIR/kube-proxy.yaml" --v 1
}

start_coredns() {
  # Read access to what the kubernetes plugin watches, nothing more.
  admin apply --server-side -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "caduceus:coredns"}
rules:
- apiGroups: [""]
  resources: [services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "caduceus:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "caduceus:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "caduceus:coredns"}
YAML
  # The cluster domain only; every other name is refused, never forwarded.
  cat >"$DIR/Corefile" <<COREFILE
$CLUSTER_DOMAIN:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_ADDRESS
    errors
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $CP_DIR/coredns.kubeconfig caduceus
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
COREFILE
  launch coredns nsenter --net="/var/run/netns/$NETNS" "$BIN/coredns-$COREDNS_VERSION" -conf "$DIR/Corefile"
}

create_volumes() {
  local index path documents=""
  for index in $(seq -w 1 "$VOLUMES"); do
    path="$DIR/volumes/pv-$index"
    mkdir -p "$path"
    # Any uid a restricted pod runs as may write (hostPath ignores fsGroup).
    chmod 0777 "$path"
    documents+="---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: caduceus-node-pv-$index
  labels: {caduceus.dev/node-volume: \"true\"}
spec:
  capacity: {storage: 1Ti}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $path, type: Directory}
"
  done
  admin apply --server-side -f - >/dev/null <<<"$documents"
}

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  until [[ "$(admin get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]; do
    local name
    for name in containerd kubelet kube-controller-manager kube-scheduler kube-proxy coredns; do
      alive "$name" || die "$name exited (log: $DIR/$name.log)"
    done
    ((SECONDS < deadline)) || die "node $NODE_NAME not Ready within $READY_TIMEOUT s (log: $DIR/kubelet.log)"
    sleep 1
  done
  # ServiceAccounts of new namespaces come from the controller-manager.
  until admin -n default get serviceaccount default >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "the controller-manager created no default ServiceAccount (log: $DIR/kube-controller-manager.log)"
    sleep 1
  done
  until dig_ok; do
    ((SECONDS < deadline)) || die "CoreDNS does not answer for $CLUSTER_DOMAIN (log: $DIR/coredns.log)"
    sleep 1
  done
}

# CoreDNS answers for the kubernetes Service (a raw DNS query: no resolver
# tools are needed on the host).
dig_ok() {
  in_node python3 - "$NODE_ADDRESS" "kubernetes.default.svc.$CLUSTER_DOMAIN" <<'PY'
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
query += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(query, (server, 53))
answer = s.recv(512)
rcode = answer[3] & 0x0F
answers = struct.unpack(">H", answer[6:8])[0]
sys.exit(0 if rcode == 0 and answers > 0 else 1)
PY
}

# --- stop: containers, processes, mounts, cgroups, network ---------------

kill_pods() {
  # Every process of every pod, through the cgroups the kubelet made.
  local cgroup pid
  for cgroup in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$cgroup" ]] || continue
    for pid in $(find "$cgroup" -name cgroup.procs -exec cat {} + 2>/dev/null || true); do
      kill -9 "$pid" 2>/dev/null || true
    done
  done
  # The containerd shims of our containerd.
  for pid in $(pgrep -f "containerd-shim.*-address $CONTAINERD_SOCK" || true); do
    kill -9 "$pid" 2>/dev/null || true
  done
}

remove_cgroups() {
  local cgroup
  for cgroup in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$cgroup" ]] || continue
    find "$cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

unmount_all() {
  # Deepest first: every mount below the state directory, and the network
  # namespaces containerd made for pods.
  local mount
  for _ in 1 2 3; do
    for mount in $(awk -v dir="$DIR/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r); do
      umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true
    done
  done
  if [[ -f "$DIR/pod-netns-before" ]]; then
    local name
    for name in $(ls /var/run/netns 2>/dev/null); do
      [[ "$name" == cni-* ]] || continue
      grep -qx "$name" "$DIR/pod-netns-before" && continue
      umount "/var/run/netns/$name" 2>/dev/null || true
      rm -f "/var/run/netns/$name"
    done
  fi
}

stop() {
  [[ -d "$DIR" ]] || return 0
  local name
  for name in coredns kube-proxy kube-scheduler kube-controller-manager kubelet; do
    stop_process "$name"
  done
  kill_pods
  stop_process containerd
  kill_pods
  remove_cgroups
  unmount_all
  CADUCEUS_CP_DIR="$CP_DIR" "$ROOT/hack/control-plane.sh" stop || true
  undo_host_changes
  rm -f "$DIR/env"
}

fail_start() {
  local status=$?
  trap - EXIT
  if ((status != 0)); then
    echo "hack/node.sh: start failed; stopping what it started (state kept in $DIR)" >&2
    stop 2>/dev/null || true
  fi
  exit "$status"
}

start() {
  [[ $(id -u) -eq 0 ]] || die "the real node needs root (network namespace, containerd, kubelet)"
  if healthy; then
    cat "$DIR/env"
    return
  fi
  stop 2>/dev/null || true
  if [[ -d "$DIR" && -n "$(ls -A "$DIR")" && ! -e "$DIR/$MARKER" ]]; then
    die "$DIR is not empty and was not made by this script; refusing to wipe it (set CADUCEUS_NODE_DIR)"
  fi
  if ip netns list 2>/dev/null | grep -qw "^$NETNS"; then
    die "network namespace $NETNS exists but is not ours (no state in $DIR); remove it with 'ip netns del $NETNS'"
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chmod 711 "$DIR"
  touch "$DIR/$MARKER"
  trap fail_start EXIT

  ensure_packages
  command -v kubectl >/dev/null || die "kubectl is required on PATH"
  [[ -x "$CNI_BIN/bridge" && -x "$CNI_BIN/host-local" && -x "$CNI_BIN/portmap" ]] ||
    die "the CNI plugins are missing from $CNI_BIN (Debian package containernetworking-plugins)"
  BIN="$("$ROOT/hack/build-control-plane.sh" node | tail -n1)" || die "hack/build-control-plane.sh node failed"
  COREDNS_VERSION="$(cd "$BIN" && ls coredns-* | sed 's/^coredns-//' | sort -V | tail -n1)"
  "$ROOT/hack/images.sh" build >&2 || die "hack/images.sh build failed"

  HOST_BRIDGE_NF="$(sysctl -n net.bridge.bridge-nf-call-iptables 2>/dev/null || echo 0)"
  ls /var/run/netns 2>/dev/null >"$DIR/pod-netns-before" || : >"$DIR/pod-netns-before"
  setup_network

  CADUCEUS_CP_DIR="$CP_DIR" CADUCEUS_CP_NETNS="$NETNS" CADUCEUS_CP_ADDRESS="$NODE_ADDRESS" \
    "$ROOT/hack/control-plane.sh" start >/dev/null || die "the control plane did not start (logs in $CP_DIR)"

  start_containerd
  import_images
  start_control_loops
  start_coredns
  start_kubelet
  create_volumes
  wait_ready

  {
    printf 'export CADUCEUS_NODE_DIR=%q\n' "$DIR"
    printf 'export CADUCEUS_NODE_NETNS=%q\n' "$NETNS"
    printf 'export CADUCEUS_NODE_ADDRESS=%q\n' "$NODE_ADDRESS"
    printf 'export CADUCEUS_NODE_CONTAINERD=%q\n' "$CONTAINERD_SOCK"
    cat "$CP_DIR/env"
  } >"$DIR/env.tmp"
  mv "$DIR/env.tmp" "$DIR/env"
  trap - EXIT
  cat "$DIR/env"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    healthy || die "no healthy node runs from $DIR; run 'hack/node.sh start'"
    cat "$DIR/env"
    ;;
  *)
    echo "usage: hack/node.sh start|stop|env   (state in \$CADUCEUS_NODE_DIR, default /tmp/caduceus-node)" >&2
    exit 2
    ;;
esac

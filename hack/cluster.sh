#!/usr/bin/env bash
# A one-node Kubernetes on this machine, from pinned parts (make cluster-up,
# make cluster-down):
#
#   hack/cluster.sh up [IMAGE.tar...]  # start it (root), import the images, print `node ready`
#   hack/cluster.sh load IMAGE.tar...  # import OCI image archives into its containerd
#   hack/cluster.sh status             # exit 0 when it runs, 1 when not
#   hack/cluster.sh down               # stop it and undo what up did; harmless when nothing runs
#
# Parts: etcd, kube-apiserver and kubectl of hack/envtest-assets.sh; kubelet,
# kube-proxy, kube-controller-manager, kube-scheduler, CoreDNS, crictl and
# the pause program of hack/node-assets.sh (containerd, runc and the CNI
# plugins from Debian). The admin kubeconfig is $CACHE/cluster/kubeconfig;
# component logs are in $CACHE/cluster/logs/ (kept after down).
# Storage: a default StorageClass `local` (no provisioner, WaitForFirstConsumer)
# and static `local` PersistentVolumes under $CACHE/cluster/run/volumes,
# which, unlike hostPath, apply a pod's fsGroup.
#
# Everything a run creates lives under $CACHE/cluster/run, except what
# kubelet and containerd insist on creating elsewhere (/run/netns,
# /run/containerd, /var/lib/kubelet/device-plugins, /var/log/containers,
# /var/lib/cni): down removes those when up found them absent. Down also
# removes the KUBE-* and CNI-* iptables chains and rules, the bridge
# interface, the pods' cgroups, and restores the sysctls up saved.
set -euo pipefail

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

CLUSTER_DIR="$IDEAPOOL_CACHE/cluster"
RUN="$CLUSTER_DIR/run"        # removed by down
PKI="$CLUSTER_DIR/pki"        # kept, rewritten when the node's address changes
CONF="$CLUSTER_DIR/conf"      # config files, written only when their content changes
LOGS="$CLUSTER_DIR/logs"      # kept for post-mortems, truncated by the next up
SAVED="$CLUSTER_DIR/saved"    # what up found (sysctls, paths), read by down
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig"

# Addresses. The pod network is one CNI bridge; Services get virtual IPs
# that kube-proxy (iptables mode) maps, from pods and from this host alike.
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
BRIDGE=ideapool0
APISERVER_PORT=6443
ETCD_PORT=12379
ETCD_PEER_PORT=12380
CLUSTER_DOMAIN=cluster.local
PAUSE_IMAGE=registry.k8s.io/pause:3.10
COREDNS_IMAGE=registry.k8s.io/coredns/coredns:v1.15.0
# Static local PersistentVolumes made by up; a claim takes one whole.
LOCAL_PVS=${IDEAPOOL_CLUSTER_PVS:-12}

# Components in start order; down stops them in reverse.
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
# Paths kubelet, containerd and the CNI plugins create whatever they are
# told; down removes the ones up did not find.
HOST_PATHS=(/run/netns /run/containerd /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni)
# Kernel settings up sets (forwarding, bridged traffic through iptables) or
# that kubelet and kube-proxy change; down puts back what up found.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.ipv4.conf.all.route_localnet vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait)

usage() {
  print_header "$0"
  exit "${1:-2}"
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "a node needs root (mounts, network namespaces, iptables); run as root"
}

# write_if_changed FILE: stdin into FILE unless FILE already holds exactly
# that. kube-proxy exits when its config file changes under it, and a
# rewrite with the same content still looks like a change.
write_if_changed() {
  local file=$1 tmp
  mkdir -p "$(dirname "$file")"
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$file"
  fi
}

node_ip() {
  ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1
}

node_name() { hostname | tr '[:upper:]' '[:lower:]'; }

# --- processes --------------------------------------------------------------

pid_file() { printf '%s/pids/%s.pid' "$RUN" "$1"; }

# proc_pid NAME: the pid of component NAME when it is alive and still the
# binary we started (a recycled pid is not ours).
proc_pid() {
  local f pid exe
  f=$(pid_file "$1")
  [[ -f $f ]] || return 1
  read -r pid exe <"$f" || return 1
  [[ -n $pid && -d /proc/$pid ]] || return 1
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$exe" ]] || return 1
  printf '%s\n' "$pid"
}

# start_proc NAME BINARY ARGS...: run BINARY in its own session, logging to
# $LOGS/NAME.log, and remember its pid and executable.
start_proc() {
  local name=$1 bin=$2 pid
  shift 2
  mkdir -p "$RUN/pids" "$LOGS"
  # (8>&-: the lock of up and down is not the component's to hold.)
  setsid "$bin" "$@" >"$LOGS/$name.log" 2>&1 </dev/null 8>&- &
  pid=$!
  printf '%s %s\n' "$pid" "$(readlink -f "$bin")" >"$(pid_file "$name")"
}

# stop_pids WHAT PID...: SIGTERM to each, then SIGKILL to those still
# running after 15 s.
stop_pids() {
  local what=$1 pid i alive
  shift
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  for i in $(seq 1 150); do
    alive=()
    for pid in "$@"; do [[ -d /proc/$pid ]] && alive+=("$pid"); done
    ((${#alive[@]})) || return 0
    sleep 0.1
  done
  log "$what (pids ${alive[*]}) did not stop within 15 s; killing"
  kill -KILL "${alive[@]}" 2>/dev/null || true
  sleep 0.2
}

# stop_procs NAME...: stop components at once.
stop_procs() {
  local c pid pids=()
  for c in "$@"; do
    if pid=$(proc_pid "$c"); then pids+=("$pid"); fi
  done
  stop_pids "$*" "${pids[@]}"
  for c in "$@"; do rm -f "$(pid_file "$c")"; done
}

# --- what up found, for down ------------------------------------------------

save_host_state() {
  mkdir -p "$SAVED"
  # Saved once per up/down cycle: a second up (or one after a failed up)
  # must not take the node's settings for the machine's own.
  if [[ ! -f $SAVED/sysctls ]]; then
    local s v
    for s in "${SYSCTLS[@]}"; do
      if v=$(sysctl -n "$s" 2>/dev/null); then printf '%s=%s\n' "$s" "$v"; fi
    done >"$SAVED/sysctls.tmp"
    mv "$SAVED/sysctls.tmp" "$SAVED/sysctls"
  fi
  if [[ ! -f $SAVED/paths ]]; then
    local p
    for p in "${HOST_PATHS[@]}"; do [[ -e $p ]] || printf '%s\n' "$p"; done >"$SAVED/paths.tmp"
    mv "$SAVED/paths.tmp" "$SAVED/paths"
  fi
}

restore_sysctls() {
  [[ -f $SAVED/sysctls ]] || return 0
  local line
  while IFS= read -r line; do
    sysctl -q -w "$line" >/dev/null 2>&1 || log "could not restore sysctl $line"
  done <"$SAVED/sysctls"
  rm -f "$SAVED/sysctls"
}

remove_created_paths() {
  [[ -f $SAVED/paths ]] || return 0
  local p
  while IFS= read -r p; do
    [[ -n $p && -e $p ]] || continue
    unmount_under "$p"
    rm -rf --one-file-system "$p"
  done <"$SAVED/paths"
  rm -f "$SAVED/paths"
}

# unmount_under DIR: every mount point at or below DIR, deepest first.
unmount_under() {
  local dir=$1 m
  [[ -e $dir ]] || return 0
  dir=$(readlink -f "$dir")
  # /proc/self/mountinfo escapes spaces as \040; none of our paths has one.
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r | uniq |
    while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done
}

# clean_iptables: remove every KUBE-* and CNI-* chain and every rule that
# jumps to one (kube-proxy, kubelet's canaries, the bridge plugin's
# masquerading, portmap), from each table of IPv4 and IPv6, leaving the
# rest of each table as it was.
clean_iptables() {
  local fam table dump
  for fam in iptables ip6tables; do
    command -v "$fam-save" >/dev/null || continue
    for table in filter nat mangle raw; do
      dump=$("$fam-save" -t "$table" 2>/dev/null) || continue
      grep -qE '(KUBE|CNI)-' <<<"$dump" || continue
      grep -vE '^:(KUBE|CNI)-|^-A (KUBE|CNI)-|-j (KUBE|CNI)-' <<<"$dump" | "$fam-restore" -T "$table" ||
        log "could not clean the $fam $table table"
    done
  done
}

remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods* /sys/fs/cgroup/kubepods*; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || log "could not remove cgroup $d"
  done
}

# --- certificates and kubeconfigs -------------------------------------------

# cert NAME SUBJECT EXTENSIONS: a P-256 key and a certificate signed by the
# cluster CA, valid for a year.
cert() {
  local name=$1 subj=$2 ext=$3
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" 2>/dev/null |
    openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 365 -extfile <(printf '%b\n' "$ext") -out "$PKI/$name.crt" 2>/dev/null
}

make_pki() {
  local ip=$1 name=$2 want
  want="ip=$ip node=$name svc=$KUBERNETES_SVC_IP v=1"
  if [[ -f $PKI/STAMP && "$(<"$PKI/STAMP")" == "$want" ]] &&
    openssl x509 -checkend 86400 -noout -in "$PKI/apiserver.crt" >/dev/null 2>&1; then
    return 0
  fi
  log "cluster: making certificates for $name ($ip)"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  chmod 0700 "$PKI"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=ideapool-cluster-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/ca.crt" 2>/dev/null
  local client='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'
  local server='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth'
  cert apiserver "/CN=kube-apiserver" "$server\nsubjectAltName=IP:127.0.0.1,IP:$ip,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
  cert kubelet-serving "/CN=$name" "$server\nsubjectAltName=IP:$ip,DNS:$name"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  cert admin "/O=system:masters/CN=kubernetes-admin" "$client"
  cert kubelet "/O=system:nodes/CN=system:node:$name" "$client"
  cert kube-controller-manager "/CN=system:kube-controller-manager" "$client"
  cert kube-scheduler "/CN=system:kube-scheduler" "$client"
  cert kube-proxy "/CN=system:kube-proxy" "$client"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/sa.key" 2>/dev/null
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  printf '%s\n' "$want" >"$PKI/STAMP"
}

# kubeconfig NAME SERVER: a kubeconfig for the client certificate NAME.
kubeconfig() {
  local name=$1 server=$2
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ideapool
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$name.crt")
    client-key-data: $(base64 -w0 "$PKI/$name.key")
contexts:
- name: ideapool
  context: {cluster: ideapool, user: $name}
current-context: ideapool
EOF
}

# --- configuration files ----------------------------------------------------

write_configs() {
  local ip=$1 name=$2 local_api="https://127.0.0.1:$APISERVER_PORT" c
  for c in kubelet kube-controller-manager kube-scheduler kube-proxy; do
    kubeconfig "$c" "$local_api" | write_if_changed "$CONF/$c.kubeconfig"
  done
  kubeconfig admin "$local_api" | write_if_changed "$KUBECONFIG_PATH"
  chmod 0600 "$KUBECONFIG_PATH" "$CONF"/*.kubeconfig

  write_if_changed "$CONF/containerd.toml" <<EOF
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
# This VM lacks CAP_SYS_RESOURCE: no negative OOM score adjustments.
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$RUN/containerd/containerd.sock"

[ttrpc]
  address = "$RUN/containerd/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # runc cannot set the -998 oom_score_adj containerd asks for without
  # CAP_SYS_RESOURCE ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "$RUN/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CONF/cni"
EOF

  write_if_changed "$CONF/cni/10-ideapool.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ideapool",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$RUN/cni/networks"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  write_if_changed "$CONF/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$RUN/containerd/containerd.sock"
cgroupDriver: cgroupfs
# This machine has cgroup v1 (hybrid): allowed, with a deprecation warning.
failCgroupV1: false
# No CAP_SYS_RESOURCE: keep the default OOM score.
oomScoreAdj: 0
clusterDNS: ["$DNS_SVC_IP"]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: /etc/resolv.conf
volumePluginDir: "$RUN/kubelet/volume-plugins"
podLogsDir: "$RUN/pod-logs"
failSwapOn: false
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
serializeImagePulls: false
# A test node on a shared disk: evict only when it is really full, and never
# collect the imported images (they cannot be pulled again).
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF

  write_if_changed "$CONF/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$CONF/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $name
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
# Leave the machine's conntrack settings alone (0: do not change).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
# Node ports on 127.0.0.1 would need route_localnet=1.
iptables: {localhostNodePorts: false}
EOF
}

# --- up ---------------------------------------------------------------------

running_components() {
  local c n=0
  for c in "${COMPONENTS[@]}"; do
    if proc_pid "$c" >/dev/null; then n=$((n + 1)); fi
  done
  printf '%s\n' "$n"
}

# wait_for WHAT SECONDS CMD...: retry CMD every half second.
wait_for() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "cluster: $what not ready after ${secs}s"
  return 1
}

component_alive() {
  local c
  for c in "$@"; do
    if ! proc_pid "$c" >/dev/null; then
      log "cluster: $c exited; last lines of $LOGS/$c.log:"
      tail -n 30 "$LOGS/$c.log" >&2 || true
      return 1
    fi
  done
}

ctr_() { ctr --address "$RUN/containerd/containerd.sock" --namespace k8s.io "$@"; }

# load TAR...: import image archives; images the cluster already holds with
# the same digest are left alone.
load_images() {
  local tar
  for tar in "$@"; do
    [[ -f $tar ]] || die "no image archive $tar"
    ctr_ images import "$tar" >/dev/null ||
      die "ctr images import $tar failed"
    log "cluster: imported $(tar -xOf "$tar" index.json | sed -n 's/.*"io.containerd.image.name": *"\([^"]*\)".*/\1/p' | paste -sd' ')"
  done
}

# system_images: the pause image and CoreDNS's, made from the binaries of
# hack/node-assets.sh by hack/image (no registry to pull them from).
system_images() {
  local out="$RUN/images"
  mkdir -p "$out"
  (cd "$HACK_DIR/.." && go run ./hack/image binary -o "$out/pause.tar" -tag "$PAUSE_IMAGE" \
    -file "$NODE_ASSETS/pause:/pause" -entrypoint /pause -user 65535:65535) >&2
  (cd "$HACK_DIR/.." && go run ./hack/image binary -o "$out/coredns.tar" -tag "$COREDNS_IMAGE" \
    -file "$NODE_ASSETS/coredns:/coredns" -entrypoint /coredns -user 65532:65532) >&2
  printf '%s\n' "$out/pause.tar" "$out/coredns.tar"
}

system_manifests() {
  local name=$1 i
  cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
  for ((i = 1; i <= LOCAL_PVS; i++)); do
    mkdir -p "$RUN/volumes/pv$i"
    cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-pv$i
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  local: {path: "$RUN/volumes/pv$i"}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: ["$name"]}
EOF
  done
  cat <<EOF
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        forward . /etc/resolv.conf
        cache 30
        loop
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        # Port 1053: no NET_BIND_SERVICE needed; the Service maps 53 to it.
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        livenessProbe:
          httpGet: {path: /health, port: 8080}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {memory: 170Mi}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_SVC_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
}

# dns_answers SERVER NAME: true when SERVER answers an A query for NAME with
# at least one record (DNS over TCP, RFC 1035 4.2.2; no dig on this machine).
dns_answers() {
  local server=$1 name=$2 q='\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00' label len reply
  local -a labels b
  IFS=. read -ra labels <<<"$name"
  for label in "${labels[@]}"; do q+=$(printf '\\x%02x' "${#label}")$label; done
  q+='\x00\x00\x01\x00\x01'
  len=$((12 + ${#name} + 2 + 4))
  # shellcheck disable=SC2016
  reply=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/53" && printf "$2" >&3 && head -c 14 <&3 | od -An -tu1' _ \
    "$server" "$(printf '\\x%02x\\x%02x' $((len >> 8)) $((len & 255)))$q") || return 1
  read -ra b <<<"$reply"
  # b[0..1] length; header: id, flags (rcode in the low bits of b[5]), qdcount, ancount.
  ((${#b[@]} >= 10 && (b[5] & 15) == 0 && b[8] * 256 + b[9] > 0))
}

up() {
  need_root
  mkdir -p "$CLUSTER_DIR"
  exec 8>"$CLUSTER_DIR/.lock"
  flock -n 8 || die "another hack/cluster.sh up or down is running"
  local n
  n=$(running_components)
  if ((n == ${#COMPONENTS[@]})); then
    log "cluster: already running (kubeconfig $KUBECONFIG_PATH); make cluster-down stops it"
    if (($#)); then load_images "$@"; fi
    return 0
  elif ((n > 0)); then
    die "a cluster is partly running ($n of ${#COMPONENTS[@]} components); run make cluster-down first"
  fi

  local started=$SECONDS
  ENVTEST_ASSETS=$("$HACK_DIR/envtest-assets.sh")
  NODE_ASSETS=$("$HACK_DIR/node-assets.sh")
  local ip name
  ip=$(node_ip)
  name=$(node_name)
  [[ -n $ip ]] || die "cannot find this machine's IPv4 address (ip route get 1.1.1.1)"
  trap 'log "cluster: up failed; stopping what it started (logs in $LOGS)"; down_locked' ERR
  save_host_state
  rm -rf "$RUN"
  mkdir -p "$RUN" "$LOGS" "$RUN/cni/networks"
  make_pki "$ip" "$name"
  write_configs "$ip" "$name"

  # Forward and filter bridged pod traffic, as kube-proxy and the bridge need.
  modprobe br_netfilter 2>/dev/null || true
  sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 >/dev/null

  start_proc containerd /usr/bin/containerd --config "$CONF/containerd.toml"
  start_proc etcd "$ENVTEST_ASSETS/etcd" --name node --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "node=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
  start_proc kube-apiserver "$ENVTEST_ASSETS/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 0.0.0.0 --secure-port "$APISERVER_PORT" --advertise-address "$ip" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --profiling=false
  wait_for "containerd" 30 test -S "$RUN/containerd/containerd.sock"
  component_alive containerd
  load_images $(system_images) "$@"

  export KUBECONFIG=$KUBECONFIG_PATH
  KUBECTL="$ENVTEST_ASSETS/kubectl"
  if ! wait_for "kube-apiserver" 60 "$KUBECTL" get --raw /readyz; then
    component_alive etcd kube-apiserver
    return 1
  fi

  start_proc kube-controller-manager "$NODE_ASSETS/kube-controller-manager" \
    --kubeconfig "$CONF/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$CONF/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$CONF/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --flex-volume-plugin-dir "$RUN/controller-manager/volume-plugins" \
    --profiling=false
  start_proc kube-scheduler "$NODE_ASSETS/kube-scheduler" \
    --kubeconfig "$CONF/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$CONF/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$CONF/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
  start_proc kubelet "$NODE_ASSETS/kubelet" \
    --config "$CONF/kubelet.yaml" --kubeconfig "$CONF/kubelet.kubeconfig" \
    --root-dir "$RUN/kubelet" --cert-dir "$RUN/kubelet/pki" \
    --node-ip "$ip" --hostname-override "$name"
  start_proc kube-proxy "$NODE_ASSETS/kube-proxy" --config "$CONF/kube-proxy.yaml"

  wait_for "node $name" 60 "$KUBECTL" get node "$name" || { component_alive "${COMPONENTS[@]}"; return 1; }
  system_manifests "$name" | "$KUBECTL" apply -f - >/dev/null
  if ! wait_for "node $name Ready" 60 "$KUBECTL" wait --for=condition=Ready "node/$name" --timeout=1s; then
    component_alive "${COMPONENTS[@]}"
    return 1
  fi
  if ! wait_for "CoreDNS" 120 "$KUBECTL" -n kube-system wait --for=condition=Available deployment/coredns --timeout=1s; then
    "$KUBECTL" -n kube-system get pods -o wide >&2 || true
    return 1
  fi
  wait_for "cluster DNS" 60 dns_answers "$DNS_SVC_IP" "kubernetes.default.svc.$CLUSTER_DOMAIN"
  trap - ERR
  log "cluster: up in $((SECONDS - started))s; kubeconfig $KUBECONFIG_PATH; debian: $(paste -sd, "$NODE_ASSETS/debian-packages.txt")"
  echo "node ready"
}

# --- down -------------------------------------------------------------------

down() {
  need_root
  mkdir -p "$CLUSTER_DIR"
  exec 8>"$CLUSTER_DIR/.lock"
  flock -w 60 8 || die "another hack/cluster.sh up or down is running"
  down_locked
  echo "cluster down"
}

down_locked() {
  trap - ERR
  local sock="$RUN/containerd/containerd.sock" pid i
  # The node's agents and controllers first, so nothing restarts what is
  # being stopped.
  stop_procs kubelet kube-proxy kube-scheduler kube-controller-manager
  # Every pod sandbox through containerd: CNI DEL releases its address,
  # veth, netns and the plugins' iptables rules.
  if proc_pid containerd >/dev/null && [[ -S $sock ]]; then
    local crictl
    crictl=$(ls "$IDEAPOOL_CACHE"/node/*/crictl 2>/dev/null | head -n1)
    if [[ -n $crictl ]]; then
      timeout 60 "$crictl" --runtime-endpoint "unix://$sock" rmp --all --force >/dev/null 2>&1 ||
        log "cluster: crictl rmp --all failed; cleaning up by hand"
    fi
  fi
  stop_procs containerd
  # Shims outlive containerd by design; ours name our socket.
  # shellcheck disable=SC2046
  stop_pids containerd-shim $(pgrep -f -- "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true)
  stop_procs kube-apiserver
  stop_procs etcd

  local netns
  for netns in /run/netns/cni-*; do
    [[ -e $netns ]] || continue
    umount "$netns" 2>/dev/null || umount -l "$netns" 2>/dev/null || true
    rm -f "$netns"
  done
  unmount_under "$RUN"
  unmount_under /run/containerd
  unmount_under /var/lib/kubelet
  # veths a sandbox left behind hang off our bridge; any other is not ours.
  for i in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$i" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE" || log "could not delete interface $BRIDGE"; fi
  clean_iptables
  remove_cgroups
  rm -rf --one-file-system "$RUN"
  remove_created_paths
  restore_sysctls
  rm -f "$KUBECONFIG_PATH"
}

status() {
  local n
  n=$(running_components)
  if ((n == ${#COMPONENTS[@]})); then
    echo "running (kubeconfig $KUBECONFIG_PATH)"
    return 0
  fi
  echo "not running ($n of ${#COMPONENTS[@]} components)"
  return 1
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    up) up "$@" ;;
    down) down ;;
    status) status ;;
    load)
      (($#)) || usage
      status >/dev/null || die "no cluster is running (make cluster-up)"
      load_images "$@"
      ;;
    -h | --help) usage 0 ;;
    *) usage ;;
  esac
}

main "$@"

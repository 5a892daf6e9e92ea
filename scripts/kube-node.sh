#!/usr/bin/env bash
# A Kubernetes node on this machine, next to scripts/kube-apiserver.sh's
# API server, so that the Helm chart's pods actually run: the API
# replicas answer, the render node registers and renders with bubblewrap
# in the sandbox the chart gives it. deploy/node_test.go installs the
# chart there and renders through it.
#
#   scripts/kube-node.sh start   build what is missing, start the API server
#                                and the node, print the variables of the test
#   scripts/kube-node.sh stop    stop both and undo every change to the host
#   scripts/kube-node.sh build   only build what is missing
#
# Then, with the test services of scripts/services.sh running:
#
#   RENDERFARM_TEST_KUBECONFIG=… RENDERFARM_TEST_KUBE_NODE=10.88.0.1 \
#       go test ./deploy/ -run TestChartOnANode -v -timeout 30m
#
# Needs root (a bridge, iptables, containers) and Debian's debootstrap,
# socat, iptables, gcc, libc6-dev, libseccomp-dev and pkg-config, which it
# installs when missing.
#
# What it builds, into the cache directory of kube-apiserver.sh
# (~/.cache/renderfarm-kube), from the Go module proxy: runc (with
# seccomp, so cgo), containerd, its runc shim, ctr, crictl, the CNI
# plugins bridge, host-local and loopback, and kubelet, kube-scheduler and
# kubectl from the same Kubernetes source as the API server (kubectl of
# the same release: the machine's may be too old for it). Then the pause
# image from that source's pause.c, and the project's two images as
# docker-compose.yml's dockerfile_inline describes them, without Docker:
# Debian bookworm by debootstrap, then the same apt-get install and
# useradd in a chroot (api: ca-certificates; worker: Blender, ffmpeg,
# bubblewrap, Mesa), with the renderfarm binary built from this checkout.
# Each start builds that binary again, and imports an image again only
# when its binary or its packages changed.
#
# Measured on 2 cores: a start with everything built and imported takes
# 10 s, and 50 s when the binary changed (the worker image's import is
# 30 s of it); stop takes 20 s. Building everything, with Go's build cache
# already holding these builds, takes 2.5 minutes: debootstrap 36 s and
# the apt-get of the two images 50 s (from deb.debian.org), the Go builds
# 30 s. On a cold build cache the Go builds take about 13 minutes: kubelet
# 10 (kube-scheduler and kubectl then share most of it), containerd 1,
# runc 20 s; starting from the API server's build, kubectl alone took 1
# minute. Disk: 1.5 GB of root file systems and 3 GB of containerd's
# content and snapshots, under ~/.cache/renderfarm-kube/node, and about
# 3 GB more of Go's build cache.
#
# What it changes on the host, all undone by stop:
# - a bridge kn0, 10.88.0.1/16, the pods' network (CNI bridge plugin, no
#   masquerading), which must be free here;
# - an iptables rule FORWARD -s 10.88.0.0/16 ! -o kn0 -j DROP, so that
#   pod traffic never leaves the machine (there is no kube-proxy: Service
#   IPs would otherwise go out the default route), and the kubelet's own
#   chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT);
# - net.ipv4.ip_forward, which the bridge plugin turns on: its former
#   value is kept and restored;
# - socat on 10.88.0.1:55432 and 10.88.0.1:59000 (KUBE_NODE_FORWARD),
#   forwarding to the same ports on 127.0.0.1, where scripts/services.sh's
#   PostgreSQL and S3 listen, for the pods;
# - containerd (socket and state in /run/renderfarm-kube-node), the
#   kubelet on 127.0.0.1:10250 (healthz 10248) and the scheduler on
#   127.0.0.1:10259, their mounts, the pods' network namespaces (under
#   containerd's state directory) and cgroups (kubepods in each
#   hierarchy).
#
# The node is named localhost, the address the API server dials it at
# (it tries a node's host name first), and its InternalIP is the bridge's
# (a node IP may not be loopback). Its kubelet answers the API server's
# exec, logs and port-forward anonymously, on 127.0.0.1 only: the API
# server has no kubelet client certificate. There is no cluster DNS and
# no kube-proxy: the test reaches the pods by their IPs on the bridge.
#
# What this machine needed, and a usual one may not:
# - failCgroupV1: false: it has cgroup v1, which kubelets since 1.35
#   refuse unless told (they log a deprecation warning);
# - containerd's restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE,
#   and every pod sandbox failed with "failed to update
#   /proc/self/oom_score_adj: Permission denied" for the kubelet's -998;
# - no eviction or image garbage collection over the disk's fill level,
#   which is the shared disk's.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
	echo "$0 needs root: it makes a bridge and iptables rules and runs containers" >&2
	exit 1
fi

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
DIR=${RENDERFARM_KUBE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/renderfarm-kube}
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
RUNC_VERSION=v1.5.3
CONTAINERD_VERSION=v2.4.2
CRICTL_VERSION=v1.37.0
CNI_VERSION=v1.10.0
PAUSE_VERSION=3.10.2 # the sandbox image kubelet 1.37 asks for
BIN=$DIR/bin NODE=$DIR/node PKI=$DIR/run/pki
RUN=/run/renderfarm-kube-node
BRIDGE=kn0 NODE_IP=10.88.0.1 POD_CIDR=10.88.0.0/16
# The node's name: the API server reaches a node by its host name first,
# and localhost resolves to where the kubelet listens.
NODE_NAME=localhost
# Ports of the host's loopback the pods reach at NODE_IP.
KUBE_NODE_FORWARD=${KUBE_NODE_FORWARD:-${RENDERFARM_PG_PORT:-55432} ${RENDERFARM_S3_PORT:-59000}}
# The images the chart runs (imagePullPolicy Never): containerd names
# them docker.io/library/….
IMAGE_TAG=kube-node
# ctr on the node's containerd, in the namespace of the CRI's images.
CTR="$BIN/ctr --address $RUN/containerd.sock --namespace k8s.io"

# shellcheck source=scripts/lib.sh
. "$HERE/lib.sh"

# timed WHAT CMD...: runs CMD, logging how long it took.
timed() {
	local what=$1 s=$SECONDS
	shift
	"$@"
	log "$what: $((SECONDS - s)) s"
}

build_runtime() {
	mkdir -p "$BIN/cni"
	[ -x "$BIN/runc" ] || timed "runc $RUNC_VERSION" env GOBIN="$BIN" CGO_ENABLED=1 nice -n 10 \
		go install -trimpath -tags seccomp -ldflags "-X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
	local c
	for c in containerd containerd-shim-runc-v2 ctr; do
		[ -x "$BIN/$c" ] || timed "$c $CONTAINERD_VERSION" env GOBIN="$BIN" CGO_ENABLED=0 nice -n 10 \
			go install -trimpath -ldflags "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
			"github.com/containerd/containerd/v2/cmd/$c@$CONTAINERD_VERSION"
	done
	# crictl: stop removes the pods through the CRI, which tears down
	# their networks; ctr cannot.
	[ -x "$BIN/crictl" ] || timed "crictl $CRICTL_VERSION" env GOBIN="$BIN" CGO_ENABLED=0 nice -n 10 \
		go install -trimpath -ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
		"sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
	for c in main/bridge main/loopback ipam/host-local; do
		[ -x "$BIN/cni/${c#*/}" ] || timed "CNI ${c#*/} $CNI_VERSION" env GOBIN="$BIN/cni" CGO_ENABLED=0 nice -n 10 \
			go install -trimpath "github.com/containernetworking/plugins/plugins/$c@$CNI_VERSION"
	done
}

# logged CMD...: runs CMD with its output in $NODE/build.log, and shows
# the end of that if it fails.
logged() {
	"$@" >>"$NODE/build.log" 2>&1 || {
		tail -20 "$NODE/build.log" >&2
		return 1
	}
}

# chroot_run ROOT SCRIPT: runs SCRIPT with /bin/sh in the root file
# system ROOT, with /proc and the host's resolver, as a Dockerfile's RUN.
chroot_run() {
	local root=$1 rc=0
	mount --bind /proc "$root/proc"
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive \
		/bin/sh -ec "$2" || rc=$?
	umount "$root/proc"
	: >"$root/etc/resolv.conf"
	return $rc
}

# The root file systems of docker-compose.yml's api and worker targets.
# Each is made beside its place and moved there when whole, so that an
# interrupted build is started again rather than used.
build_rootfs() {
	local r=$NODE/rootfs
	mkdir -p "$r"
	if [ ! -d "$r/api" ]; then
		rm -rf "$r/api.partial"
		timed "debootstrap bookworm" logged debootstrap --variant=minbase bookworm "$r/api.partial" http://deb.debian.org/debian
		# debian:bookworm-slim's sources: the security updates too.
		printf 'deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
			>"$r/api.partial/etc/apt/sources.list"
		# FROM debian:bookworm-slim AS api; USER renderfarm; RUN mkdir work
		timed "api image's apt-get" logged chroot_run "$r/api.partial" '
			apt-get update -qq
			apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
			apt-get clean
			rm -rf /var/lib/apt/lists/*
			useradd --system --create-home --home-dir /var/lib/renderfarm renderfarm
			mkdir /var/lib/renderfarm/work
			chown renderfarm:renderfarm /var/lib/renderfarm/work'
		mv "$r/api.partial" "$r/api"
	fi
	if [ ! -d "$r/worker" ]; then
		rm -rf "$r/worker.partial"
		cp -a "$r/api" "$r/worker.partial"
		# FROM api AS worker
		timed "worker image's apt-get" logged chroot_run "$r/worker.partial" '
			apt-get update -qq
			apt-get install -y -qq --no-install-recommends blender ffmpeg bubblewrap libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null
			apt-get clean
			rm -rf /var/lib/apt/lists/*'
		mv "$r/worker.partial" "$r/worker"
	fi
}

# The pause image every pod's sandbox runs, from the Kubernetes source.
build_pause() {
	local root=$NODE/rootfs/pause src=$DIR/src/kubernetes-$KUBE_VERSION/build/pause/linux/pause.c
	[ -x "$root/pause" ] && return 0
	mkdir -p "$root"
	gcc -Os -static -DVERSION="v$PAUSE_VERSION" -o "$root/pause" "$src"
	strip "$root/pause"
}

build() {
	apt_install debootstrap socat iptables gcc libc6-dev libseccomp-dev pkg-config openssl curl
	ensure_go
	build_runtime
	local s=$SECONDS
	"$HERE/kube-apiserver.sh" build kubelet kube-scheduler kubectl
	log "Kubernetes: $((SECONDS - s)) s"
	build_pause
	build_rootfs
}

# import_image ROOTFS REF USER ENTRYPOINT: imports the directory ROOTFS
# into containerd as the image REF, one layer, unless the image there was
# made from the same files. The archive is docker save's format, which
# ctr import reads from its standard input: manifest.json, the image's
# configuration and the layer, an uncompressed tar (containerd would
# unpack a compressed one only to store it again).
import_image() {
	local root=$1 ref=$2 user=$3 entrypoint=$4
	local stamp=$NODE/images/${ref//[:\/]/_}.stamp key
	# The files that change: the binary, and the packages when the root
	# file system is made again.
	key=$(
		printf '%s %s %s\n' "$ref" "$user" "$entrypoint"
		cd "$root"
		sha256sum usr/local/bin/renderfarm var/lib/dpkg/status 2>/dev/null || true
	)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && $CTR images ls -q 2>/dev/null | grep -x "$ref" >/dev/null; then
		return 0
	fi
	local s=$SECONDS tmp diff config cdigest
	tmp=$(mktemp -d "$NODE/images/import.XXXXXX")
	tar -C "$root" --numeric-owner --xattrs -cf "$tmp/layer.tar" .
	diff=$(sha256sum <"$tmp/layer.tar" | cut -d' ' -f1)
	config=$(printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Entrypoint":["%s"],"WorkingDir":"%s","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$user" "$entrypoint" "$([ "$user" = renderfarm ] && echo /var/lib/renderfarm || echo /)" "$diff")
	cdigest=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
	printf '%s' "$config" >"$tmp/$cdigest.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$cdigest" "$ref" >"$tmp/manifest.json"
	# ctr warns at every call that containerd's support of cgroup v1 is
	# deprecated: not shown.
	tar -C "$tmp" -c manifest.json "$cdigest.json" layer.tar | $CTR images import - 2>&1 >/dev/null |
		{ grep -v 'support for cgroup v1 is deprecated' || true; } >&2
	rm -rf "$tmp"
	printf '%s\n' "$key" >"$stamp"
	log "imported $ref: $((SECONDS - s)) s"
}

# images builds the renderfarm binary from this checkout, puts it in both
# root file systems and imports what changed.
images() {
	mkdir -p "$NODE/images"
	rm -rf "$NODE/images/import."* # an interrupted import's
	(cd "$REPO" && CGO_ENABLED=0 go build -o "$NODE/renderfarm" ./cmd/renderfarm)
	local t
	for t in api worker; do
		install -m 0755 "$NODE/renderfarm" "$NODE/rootfs/$t/usr/local/bin/renderfarm"
		import_image "$NODE/rootfs/$t" "docker.io/library/renderfarm-$t:$IMAGE_TAG" renderfarm renderfarm
	done
	import_image "$NODE/rootfs/pause" "registry.k8s.io/pause:$PAUSE_VERSION" 65535:65535 /pause
}

alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# daemon NAME CMD...: starts CMD in a session of its own (it outlives
# this shell), logging to $NODE/log/NAME.log.
daemon() {
	local name=$1
	shift
	setsid "$@" >"$NODE/log/$name.log" 2>&1 &
	echo $! >"$RUN/$name.pid"
}

network() {
	if ip route show | grep -v "dev $BRIDGE" | grep "^10\.88\." >/dev/null; then
		log "10.88.0.0/16 is routed elsewhere on this machine: the node's pod network would collide"
		exit 1
	fi
	# The CNI bridge plugin (isGateway) turns forwarding on.
	[ -f "$RUN/ip_forward" ] || cat /proc/sys/net/ipv4/ip_forward >"$RUN/ip_forward"
	# Made here rather than by the plugin at the first pod, so that socat
	# can listen on its address before.
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge
		ip addr add "$NODE_IP/16" dev "$BRIDGE"
		ip link set "$BRIDGE" up
	fi
	iptables -C FORWARD -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP 2>/dev/null ||
		iptables -I FORWARD -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP
	local p
	for p in $KUBE_NODE_FORWARD; do
		alive "socat-$p" || daemon "socat-$p" socat "TCP-LISTEN:$p,bind=$NODE_IP,reuseaddr,fork" "TCP:127.0.0.1:$p"
	done
	mkdir -p "$NODE/etc/cni"
	cat >"$NODE/etc/cni/10-renderfarm.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "renderfarm-kube-node",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {
      "type": "host-local", "dataDir": "$RUN/cni-ipam",
      "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
EOF
}

containerd_up() {
	alive containerd && return 0
	cat >"$NODE/etc/containerd.toml" <<EOF
version = 3
root = '$NODE/containerd'
state = '$RUN/containerd'

[grpc]
  address = '$RUN/containerd.sock'
[ttrpc]
  address = '$RUN/containerd.sock.ttrpc'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:$PAUSE_VERSION'
  [plugins.'io.containerd.cri.v1.runtime']
    # Root here lacks CAP_SYS_RESOURCE: runc may not set an
    # oom_score_adj below containerd's own.
    restrict_oom_score_adj = true
    # The pods' network namespaces under $RUN, where stop finds them.
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$BIN/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$BIN/cni']
      conf_dir = '$NODE/etc/cni'
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
EOF
	# The shim is found on PATH.
	PATH=$BIN:$PATH daemon containerd "$BIN/containerd" --config "$NODE/etc/containerd.toml"
	for _ in $(seq 100); do
		$CTR version >/dev/null 2>&1 && return 0
		alive containerd || break
		sleep 0.2
	done
	log "containerd did not start:"
	tail -5 "$NODE/log/containerd.log" >&2
	exit 1
}

kubelet_up() {
	mkdir -p "$NODE/etc/kubelet"
	# The node's credentials: a certificate of the API server's CA for
	# system:node:NAME in group system:nodes, which the Node authorizer
	# knows. Made again with the CA (a new API server, a new CA).
	local k=$NODE/etc/kubelet
	if ! openssl verify -CAfile "$PKI/ca.crt" "$k/node.crt" >/dev/null 2>&1; then
		openssl req -newkey rsa:2048 -nodes -subj "/O=system:nodes/CN=system:node:$NODE_NAME" \
			-keyout "$k/node.key" -out "$k/node.csr" 2>/dev/null
		openssl x509 -req -in "$k/node.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
			-days 3650 -out "$k/node.crt" 2>/dev/null
	fi
	cat >"$k/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$PKI/ca.crt"}
users:
- name: node
  user: {client-certificate: "$k/node.crt", client-key: "$k/node.key"}
contexts:
- name: local
  context: {cluster: local, user: node}
current-context: local
EOF
	cat >"$k/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$RUN/containerd.sock
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# The API server has no kubelet client certificate: exec, logs and
# port-forward come anonymously, on 127.0.0.1 only.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: AlwaysAllow}
podLogsDir: $NODE/log/pods
resolvConf: /etc/resolv.conf
# The disk is shared with the rest of the machine: no eviction or image
# garbage collection over its fill level.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
failSwapOn: false
maxPods: 30
EOF
	# The scheduler: kube-apiserver.sh starts none, and pods stay Pending
	# without one. The administrator's kubeconfig will do.
	alive kube-scheduler || daemon kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$DIR/kubeconfig" \
		--authentication-kubeconfig="$DIR/kubeconfig" --authorization-kubeconfig="$DIR/kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false
	alive kubelet || daemon kubelet "$BIN/kubelet" --config="$k/config.yaml" --kubeconfig="$k/kubeconfig" \
		--root-dir="$NODE/kubelet" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
	local ready
	for _ in $(seq 120); do
		ready=$("$BIN/kubectl" --kubeconfig="$DIR/kubeconfig" get node "$NODE_NAME" \
			-o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
		[ "$ready" = True ] && return 0
		if ! alive kubelet; then
			log "the kubelet exited:"
			tail -5 "$NODE/log/kubelet.log" >&2
			exit 1
		fi
		sleep 1
	done
	log "node $NODE_NAME not Ready in 2 minutes; see $NODE/log/kubelet.log"
	exit 1
}

start() {
	build
	stop
	local s=$SECONDS
	mkdir -p "$RUN" "$NODE/log"
	"$HERE/kube-apiserver.sh" start >/dev/null
	network
	containerd_up
	images
	kubelet_up
	log "node $NODE_NAME ($NODE_IP) of the API server on https://127.0.0.1:6443 Ready: $((SECONDS - s)) s"
	echo "export RENDERFARM_TEST_KUBECONFIG=$DIR/kubeconfig RENDERFARM_TEST_KUBE_NODE=$NODE_IP"
	echo "export KUBECONFIG=$DIR/kubeconfig PATH=$BIN:\$PATH"
}

# stop_daemon NAME: stops what daemon NAME started (its pid file is in
# /run, which a reboot empties), by SIGKILL after 20 s.
stop_daemon() {
	[ -f "$RUN/$1.pid" ] || return 0
	local pid
	pid=$(cat "$RUN/$1.pid")
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$RUN/$1.pid"
}

stop() {
	stop_daemon kubelet
	stop_daemon kube-scheduler
	# The pods, through the CRI: containerd then removes their network
	# namespaces and their end of the bridge too.
	if alive containerd; then
		"$BIN/crictl" --runtime-endpoint "unix://$RUN/containerd.sock" rmp --all --force >/dev/null 2>&1 || true
		local t
		for t in $($CTR tasks ls -q 2>/dev/null); do
			$CTR tasks kill -s KILL "$t" >/dev/null 2>&1 || true
		done
		sleep 1
		for t in $($CTR tasks ls -q 2>/dev/null); do
			$CTR tasks delete -f "$t" >/dev/null 2>&1 || true
		done
	fi
	stop_daemon containerd
	local p
	for p in "$RUN"/socat-*.pid; do
		[ -e "$p" ] || continue
		p=${p##*/}
		stop_daemon "${p%.pid}"
	done
	# Mounts left by the kubelet (its root directory is a bind mount of
	# itself, and each volume), by containerd and by the pods, deepest
	# first.
	awk -v a="$NODE/" -v b="$RUN/" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done
	iptables -D FORWARD -s "$POD_CIDR" ! -o "$BRIDGE" -j DROP 2>/dev/null || true
	ip link del "$BRIDGE" 2>/dev/null || true
	# The kubelet's chains: KUBE-FIREWALL drops packets to 127.0.0.0/8
	# that do not come from loopback; the others are empty markers.
	local ipt table
	for ipt in iptables ip6tables; do
		$ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
		$ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
		$ipt -F KUBE-FIREWALL 2>/dev/null || true
		$ipt -X KUBE-FIREWALL 2>/dev/null || true
		for table in filter nat mangle; do
			$ipt -t "$table" -X KUBE-KUBELET-CANARY 2>/dev/null || true
			$ipt -t "$table" -X KUBE-IPTABLES-HINT 2>/dev/null || true
		done
	done
	# The pods' cgroups, which the kubelet leaves (empty once the pods are
	# gone), innermost first.
	find /sys/fs/cgroup -depth -type d -path '*/kubepods*' -exec rmdir {} + 2>/dev/null || true
	if [ -f "$RUN/ip_forward" ]; then
		cat "$RUN/ip_forward" >/proc/sys/net/ipv4/ip_forward
	fi
	rm -rf "$RUN"
	"$HERE/kube-apiserver.sh" stop
}

case ${1:-} in
build) build ;;
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 build|start|stop" >&2
	exit 2
	;;
esac

#!/usr/bin/env bash
# A Kubernetes API server on this machine, to check the Helm chart against
# what a cluster accepts: helm install --dry-run=server and helm install,
# with the API server's own validation, KEDA's CRDs, and a controller
# manager that turns each Deployment into a ReplicaSet and Pods. There is
# no kubelet and no container runtime, so the Pods stay Pending: it checks
# the objects, not what runs in them. scripts/kube-node.sh adds a node
# that runs them.
#
#   scripts/kube-apiserver.sh start   build what is missing, start, print the KUBECONFIG
#   scripts/kube-apiserver.sh stop
#   scripts/kube-apiserver.sh build   only build what is missing
#   scripts/kube-apiserver.sh build kubelet kube-scheduler ...
#                                     those commands of k8s.io/kubernetes too
#                                     (scripts/kube-node.sh builds its own so)
#
# Then:
#
#   RENDERFARM_TEST_KUBECONFIG=$DIR/kubeconfig go test ./deploy/ -run TestChartOnAnAPIServer -v
#
# Everything is built from the Go module proxy: kube-apiserver and
# kube-controller-manager from k8s.io/kubernetes (its go.mod points the
# k8s.io/* staging modules at folders the module's zip leaves out; they are
# pointed at the published modules of the same release), etcd from
# go.etcd.io/etcd/server/v3, KEDA's CRDs from github.com/kedacore/keda/v2.
# The first start builds for about 6 minutes on 2 cores (about 1 GB of
# modules, 4 GB of build cache); later starts take seconds. It listens on
# 127.0.0.1 only (etcd 2379 and 2380, the API server 6443, the controller
# manager 10257). Needs go, openssl and curl.
set -euo pipefail

DIR=${RENDERFARM_KUBE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/renderfarm-kube}
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.0} # the one that release of Kubernetes requires
KEDA_VERSION=${KEDA_VERSION:-v2.20.2}
BIN=$DIR/bin RUN=$DIR/run PKI=$DIR/run/pki

log() { printf '==> %s\n' "$*" >&2; }

# build_kubernetes [CMD...]: the commands of k8s.io/kubernetes that are
# not built yet, kube-apiserver and kube-controller-manager when none is
# named.
build_kubernetes() {
	local names=("$@") want=() p
	[ $# -gt 0 ] || names=(kube-apiserver kube-controller-manager)
	for p in "${names[@]}"; do
		[ -x "$BIN/$p" ] || want+=("$p")
	done
	[ ${#want[@]} -eq 0 ] && return 0
	local src=$DIR/src/kubernetes-$KUBE_VERSION staging=v0.${KUBE_VERSION#v1.}
	if [ ! -d "$src" ]; then
		log "k8s.io/kubernetes@$KUBE_VERSION from the module proxy"
		local mod
		mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
		mkdir -p "$DIR/src"
		rm -rf "$src.tmp" # a copy an interrupted start left
		cp -r "$mod" "$src.tmp"
		chmod -R u+w "$src.tmp"
		rm -f "$src.tmp/go.work" "$src.tmp/go.work.sum"
		sed -i -E "s#^(\s*)(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+#\1\2 => \2 $staging#" "$src.tmp/go.mod"
		(cd "$src.tmp" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true)
		mv "$src.tmp" "$src"
	fi
	# Without these the binaries say they are v0.0.0-master, and
	# helm's checks of kubeVersion would see that.
	local major=${KUBE_VERSION#v} minor
	minor=${major#*.}
	major=${major%%.*} minor=${minor%%.*}
	local ldflags="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	mkdir -p "$BIN"
	for p in "${want[@]}"; do
		log "building $p $KUBE_VERSION (minutes, once)"
		(cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="$ldflags" -o "$BIN/$p" "./cmd/$p")
	done
}

build_etcd() {
	[ -x "$BIN/etcd" ] && return 0
	log "building etcd $ETCD_VERSION"
	# A module of its own requires the server module, whose package main
	# is etcd, so that module's replace directives do not apply.
	local b=$DIR/src/etcd-$ETCD_VERSION
	mkdir -p "$b" "$BIN"
	(
		cd "$b"
		[ -f go.mod ] || go mod init renderfarm-etcd-build >/dev/null 2>&1
		printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
		GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
		GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags='-s -w' -o "$BIN/etcd" go.etcd.io/etcd/server/v3
	)
}

keda_crds() {
	local mod
	mod=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	echo "$mod/config/crd/bases"
}

# kubeconfig FILE USER TOKEN
kubeconfig() {
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$PKI/ca.crt"}
users:
- name: $2
  user: {token: "$3"}
contexts:
- name: local
  context: {cluster: local, user: $2}
current-context: local
EOF
}

pki() {
	[ -f "$PKI/tokens.csv" ] && return 0
	mkdir -p "$PKI"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=renderfarm-kube-ca" \
		-keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
		-keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >"$PKI/san.ext"
	openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 3650 -extfile "$PKI/san.ext" -out "$PKI/apiserver.crt" 2>/dev/null
	openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
	openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
	# token,user,uid,"groups": an administrator, and the controller manager.
	printf '%s,admin,admin,"system:masters"\n%s,system:kube-controller-manager,kcm\n' \
		"$(openssl rand -hex 16)" "$(openssl rand -hex 16)" >"$PKI/tokens.csv"
}

# wait_for WHAT PIDFILE URL [CURL ARGS...]
wait_for() {
	local what=$1 pidfile=$2 url=$3
	shift 3
	for _ in $(seq 120); do
		if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			log "$what exited:"
			tail -5 "$RUN/$what.log" >&2
			exit 1
		fi
		curl -fs "$@" "$url" >/dev/null 2>&1 && return 0
		sleep 1
	done
	log "$what did not answer $url in 2 minutes"
	exit 1
}

start() {
	build_kubernetes
	build_etcd
	stop 2>/dev/null
	pki
	local admin kcm
	admin=$(sed -n 1p "$PKI/tokens.csv" | cut -d, -f1)
	kcm=$(sed -n 2p "$PKI/tokens.csv" | cut -d, -f1)
	kubeconfig "$DIR/kubeconfig" admin "$admin"
	kubeconfig "$RUN/kcm.kubeconfig" system:kube-controller-manager "$kcm"

	# Each start begins with an empty etcd: no release of a former run.
	# setsid: the servers outlive the shell that started them.
	rm -rf "$RUN/etcd-data"
	setsid "$BIN/etcd" --name local --data-dir "$RUN/etcd-data" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster local=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn \
		>"$RUN/etcd.log" 2>&1 &
	echo $! >"$RUN/etcd.pid"
	wait_for etcd "$RUN/etcd.pid" http://127.0.0.1:2379/health

	# A loopback address to advertise needs the endpoint reconciler off.
	setsid "$BIN/kube-apiserver" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
		--etcd-servers=http://127.0.0.1:2379 \
		--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
		--client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
		--authorization-mode=Node,RBAC \
		--service-account-issuer=https://kubernetes.default.svc \
		--service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
		--service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
		--endpoint-reconciler-type=none \
		>"$RUN/kube-apiserver.log" 2>&1 &
	echo $! >"$RUN/kube-apiserver.pid"
	wait_for kube-apiserver "$RUN/kube-apiserver.pid" https://127.0.0.1:6443/readyz \
		--cacert "$PKI/ca.crt" -H "Authorization: Bearer $admin"

	setsid "$BIN/kube-controller-manager" --kubeconfig="$RUN/kcm.kubeconfig" \
		--authentication-kubeconfig="$RUN/kcm.kubeconfig" --authorization-kubeconfig="$RUN/kcm.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10257 \
		--service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
		--use-service-account-credentials=true --leader-elect=false --controllers='*' \
		>"$RUN/kube-controller-manager.log" 2>&1 &
	echo $! >"$RUN/kube-controller-manager.pid"
	wait_for kube-controller-manager "$RUN/kube-controller-manager.pid" https://127.0.0.1:10257/healthz -k

	# KEDA's CRDs, so that the chart's ScaledObject and
	# TriggerAuthentication are checked against their schemas.
	local crd
	for crd in "$(keda_crds)"/keda.sh_*.yaml; do
		curl -fsS --cacert "$PKI/ca.crt" -H "Authorization: Bearer $admin" \
			-X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary "@$crd" \
			"https://127.0.0.1:6443/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$(sed -n 's/^  name: //p' "$crd" | head -1)?fieldManager=renderfarm&force=true" >/dev/null
	done
	for _ in $(seq 60); do
		curl -fs --cacert "$PKI/ca.crt" -H "Authorization: Bearer $admin" https://127.0.0.1:6443/apis/keda.sh/v1alpha1 >/dev/null && break
		sleep 1
	done
	log "Kubernetes API server $KUBE_VERSION with KEDA $KEDA_VERSION's CRDs on https://127.0.0.1:6443"
	echo "export RENDERFARM_TEST_KUBECONFIG=$DIR/kubeconfig"
}

stop() {
	local p pid
	for p in kube-controller-manager kube-apiserver etcd; do
		[ -f "$RUN/$p.pid" ] || continue
		pid=$(cat "$RUN/$p.pid")
		# Only the server this script started: after a reboot the pid
		# may be another process's.
		if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$BIN/$p" ] && kill "$pid" 2>/dev/null; then
			for _ in $(seq 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.2
			done
		fi
		rm -f "$RUN/$p.pid"
	done
}

mkdir -p "$RUN"
case ${1:-} in
build)
	shift
	build_kubernetes
	build_etcd
	[ $# -eq 0 ] || build_kubernetes "$@"
	;;
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 build|start|stop" >&2
	exit 2
	;;
esac

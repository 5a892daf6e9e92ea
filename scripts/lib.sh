# Shared by run.sh and test.sh: install what renderfarm needs on Debian 12,
# skipping whatever is already there so that reruns are fast.

# The Go release renderfarm is built with (go.mod asks for 1.26).
GO_WANT=1.26.8

log() { printf '==> %s\n' "$*" >&2; }

# apt_install PKG...: installs the Debian packages that are missing.
apt_install() {
	local missing=()
	for pkg in "$@"; do
		# Installed, not merely known to dpkg (a removed package keeps its
		# configuration and a status of "deinstall ... config-files").
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		log "missing Debian packages: ${missing[*]}; run this as root or install them with: sudo apt-get install ${missing[*]}"
		exit 1
	fi
	log "installing ${missing[*]} (a few minutes the first time)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
}

# go_ok: is the go on PATH new enough?
go_ok() {
	command -v go >/dev/null 2>&1 || return 1
	local v
	v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
	[ -n "$v" ] && [ "$(printf '%s\n%s\n' "1.26" "$v" | sort -V | head -n1)" = "1.26" ]
}

# ensure_go: puts Go >= 1.26 on PATH. Debian 12 only packages Go 1.19, so
# when no suitable Go is installed the toolchain is fetched as the Go
# module golang.org/toolchain from the module proxy.
ensure_go() {
	export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
	go_ok && return 0
	local dir="/usr/local/go-$GO_WANT"
	if [ ! -x "$dir/bin/go" ]; then
		apt_install curl unzip ca-certificates
		local proxy="${GOPROXY:-https://proxy.golang.org}"
		proxy="${proxy%%,*}"
		local tmp
		tmp=$(mktemp -d)
		log "fetching Go $GO_WANT from the module proxy"
		curl -fsSL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_WANT.linux-amd64.zip"
		unzip -q "$tmp/go.zip" -d "$tmp"
		mkdir -p "$dir"
		cp -a "$tmp/golang.org/toolchain@v0.0.1-go$GO_WANT.linux-amd64/." "$dir/"
		chmod +x "$dir/bin/"* "$dir/pkg/tool/"*/* 2>/dev/null || true
		rm -rf "$tmp"
	fi
	export PATH="$dir/bin:$PATH"
	go_ok || { log "could not set up Go $GO_WANT"; exit 1; }
}

# The Debian packages renderfarm runs with: Blender renders, ffmpeg makes
# preview videos, bubblewrap keeps both off the network and the disk (a
# render node without a working bubblewrap does not start). EEVEE and
# Workbench render headless through surfaceless EGL on Mesa, which
# Debian's blender package does not pull in ("Couldn't open libEGL.so.1"
# without them).
RUNTIME_PACKAGES=(blender ffmpeg bubblewrap libegl1 libegl-mesa0 libgl1-mesa-dri)
# What the tests need besides: a real browser for the dashboard's tests,
# and promtool (Debian packages it with Prometheus) for the alerting
# rules in deploy/prometheus.
TEST_PACKAGES=(chromium prometheus)

# The Helm release that checks deploy/kubernetes/renderfarm. Debian 12
# does not package Helm; it is built from its Go module.
HELM_VERSION=v4.3.2

# install_helm puts helm HELM_VERSION in Go's bin directory (on PATH after
# ensure_go), building it once (about 5 minutes of CPU time), and nothing on
# later runs, which find the binary built from that version.
install_helm() {
	local bin
	bin="$(go env GOPATH)/bin/helm"
	if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -q "mod[[:space:]]*helm.sh/helm/v4[[:space:]]*$HELM_VERSION"; then
		return 0
	fi
	log "building helm $HELM_VERSION from its Go module (a few minutes, once)"
	GOBIN="$(go env GOPATH)/bin" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
}

# Where a Blender that Debian 12 does not package is installed: each
# directory here is a root filesystem with usr/bin/blender inside, which
# the sandbox makes / for that Blender. `renderfarm serve` and `worker`
# use every one they find here when given no --blender.
BLENDER_ROOTS="${RENDERFARM_BLENDER_ROOTS:-/opt/renderfarm/blender}"

# install_blender_root NAME SUITE: installs Debian SUITE's Blender (with
# the GL libraries EEVEE needs; without them it fails with "Couldn't open
# libEGL.so.1") into BLENDER_ROOTS/NAME, from Debian's own archive. About
# three minutes and 1.4 GB the first time; a root already there is reused.
# The root is built beside its final place and moved there when whole, so
# an interrupted run leaves nothing that looks usable.
install_blender_root() {
	local name=$1 suite=$2
	local dir="$BLENDER_ROOTS/$name"
	[ -x "$dir/usr/bin/blender" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		log "Blender from Debian $suite is not installed in $dir; run this as root to install it"
		return 0
	fi
	apt_install debootstrap
	local tmp="$dir.partial"
	rm -rf "$tmp"
	mkdir -p "$BLENDER_ROOTS"
	log "installing Blender from Debian $suite into $dir (about 3 minutes, once)"
	debootstrap --variant=minbase "$suite" "$tmp" http://deb.debian.org/debian >/dev/null
	cp /etc/resolv.conf "$tmp/etc/resolv.conf"
	chroot "$tmp" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq &&
		apt-get install -y -qq --no-install-recommends blender libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null &&
		apt-get clean'
	mv "$tmp" "$dir"
}

# install_blenders installs every Blender the farm offers: Debian 12's
# (3.4.1, a package like any other) and Debian 13's (4.3.2, in a root).
install_blenders() {
	install_blender_root debian-trixie trixie
}

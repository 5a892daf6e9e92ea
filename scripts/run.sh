#!/usr/bin/env bash
# Sets up and runs renderfarm on this machine: installs Blender, ffmpeg and
# bubblewrap (serve refuses to render unconfined unless given --sandbox
# none) when missing, builds the binary, prints an API key, and starts
# `renderfarm serve`. Extra arguments go to serve (e.g. --addr 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

apt_install "${RUNTIME_PACKAGES[@]}"
install_blenders
ensure_go
log "building bin/renderfarm"
go build -o bin/renderfarm ./cmd/renderfarm

data_dir="${RENDERFARM_DATA_DIR:-./renderfarm-data}"
export RENDERFARM_DATA_DIR="$data_dir"
key=$(bin/renderfarm keys create --workspace "${RENDERFARM_WORKSPACE:-default}")
cat <<MSG

  API key for workspace "${RENDERFARM_WORKSPACE:-default}": $key
  (a new key each run; keys are stored hashed in $data_dir)

MSG
exec bin/renderfarm serve "$@"

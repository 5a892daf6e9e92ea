#!/usr/bin/env bash
# Runs every performance measurement of docs/performance.md with one
# command: installs what they need (Blender, ffmpeg, curl, wrk, PostgreSQL,
# an S3-compatible server), starts the services as scripts/test.sh does,
# and runs bench/suite, which prints one table of results at the end.
# Extra arguments go to bench/suite (for example -runs 1 -only overhead).
# The whole run takes about 7 minutes on 2 cores, after the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. scripts/services.sh

apt_install "${RUNTIME_PACKAGES[@]}" curl wrk
ensure_go
start_postgres
start_s3

log "bench/suite"
go run ./bench/suite "$@"

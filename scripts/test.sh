#!/usr/bin/env bash
# Runs every check and test of renderfarm: installs what the tests need
# (Blender, ffmpeg, Chromium, PostgreSQL, an S3-compatible server) and
# starts the services, then gofmt, go vet, staticcheck, the checks of
# deploy/ (helm, promtool) and the whole test suite, including end-to-end
# tests that render with the real Blender.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. scripts/services.sh

apt_install "${RUNTIME_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
install_blenders
ensure_go
# Building helm is the longest step on a fresh machine and needs nothing
# the steps before the deploy checks make, so it runs beside them.
helm_log=$(mktemp)
log "helm $HELM_VERSION: built in the background if missing (a few minutes, once)"
install_helm >"$helm_log" 2>&1 &
helm_build=$!
start_postgres
start_s3

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	printf 'gofmt would change:\n%s\n' "$unformatted" >&2
	exit 1
fi
log "go vet"
go vet ./...
log "staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
helm_ok=0
wait "$helm_build" || helm_ok=$?
cat "$helm_log" >&2
rm -f "$helm_log"
if [ "$helm_ok" != 0 ]; then
	log "could not build helm $HELM_VERSION"
	exit 1
fi
log "deploy: helm lint and helm template of the chart, promtool on the alerts"
chart=deploy/kubernetes/renderfarm
for values in "" \
	"--set autoscaling.enabled=true --set autoscaling.trigger=prometheus" \
	"--set autoscaling.enabled=true --set autoscaling.trigger=postgresql"; do
	# shellcheck disable=SC2086 # each line is several arguments
	helm lint --strict --quiet "$chart" $values
	# shellcheck disable=SC2086
	helm template farm "$chart" $values >/dev/null
done
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml
log "go test"
go test -race -timeout 30m -count=1 ./...

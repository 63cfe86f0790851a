# shellcheck shell=bash
# Redis for scripts/stack: Debian's redis-server (apt-get install on first use), our own instance in the
# foreground of its own session (not the system service), no persistence.

redis_version() { redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p'; }
redis_addr() { echo "$HOST:$REDIS_PORT"; }
redis_ports() { echo "$REDIS_PORT"; }
redis_timeout() { echo 20; }
redis_ready() { [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

redis_install() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  say "installing redis-server with apt-get (scripts/apt-install)"
  "$REPO_ROOT/scripts/apt-install" redis-server >/dev/null
}

redis_prepare() {
  local dir
  dir="$(statedir redis)"
  cat >"$dir/redis.conf" <<EOF
# Written by scripts/stack on each start.
bind $HOST
port $REDIS_PORT
protected-mode yes
daemonize no
dir $dir
save ""
appendonly no
logfile ""
EOF
}

redis_exec() { exec redis-server "$(statedir redis)/redis.conf"; }

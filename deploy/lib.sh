# shellcheck shell=bash
# Helpers shared by deploy/run and deploy/test; source this file, do not execute it.
#
#   ensure_redis               Redis answers on 127.0.0.1:6379, installing and starting it if needed.
#   ensure_postgres            PostgreSQL answers on 127.0.0.1:5432, user postgres connects over
#                              TCP without a password, and database `dispatch` exists.
#   ensure_postgres_optional   The same, but a failure is only a warning (dispatch runs without
#                              PostgreSQL; only the payroll endpoints need it).
#   ensure_cargo[_style]       cargo (with rustfmt and clippy) is on the PATH.
#   delete_namespaces GLOB     a benchmark's namespaces leave Redis and the ledger.
#   stop_pids PID...           SIGTERM, then SIGKILL after 20 s (the benchmarks' processes).
#   spare_port FROM            PORT set to a free port on 127.0.0.1 from FROM upwards.
#   wait_ready NAME PID LOG URL  a service started in the background answers 200 at URL/readyz.
#
# These set up a DEVELOPMENT machine. Production Redis is configured from deploy/redis.conf and
# deploy/sentinel.conf; production PostgreSQL is whatever your operators run (see README.md).
#
# Every function returns non-zero after printing one `[deploy] error: ...` line, so callers can
# write `ensure_redis || exit 1` and need not rely on `set -e` (which is off inside `if`/`||`).
# Messages go to stderr so that stdout stays free for what the scripts print on purpose.

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPLOY_RUN_DIR="$DEPLOY_DIR/.run"

DEPLOY_REDIS_HOST=127.0.0.1
DEPLOY_REDIS_PORT=6379
DEPLOY_PG_HOST=127.0.0.1
DEPLOY_PG_PORT=5432
DEPLOY_PG_DB=dispatch
DEPLOY_PG_CLUSTER=main # the name of the cluster created when none uses DEPLOY_PG_PORT

deploy_log() { printf '[deploy] %s\n' "$*" >&2; }
deploy_warn() { printf '[deploy] warning: %s\n' "$*" >&2; }
deploy_error() { printf '[deploy] error: %s\n' "$*" >&2; }

# Runs a command as root: directly when we are root, else through sudo.
deploy_as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    deploy_error "need root to run '$*' and sudo is not installed"
    return 1
  fi
}

# Runs a command as the postgres OS user (peer authentication on the local socket).
deploy_as_postgres() {
  if [[ $(id -un) == postgres ]]; then
    "$@"
  elif [[ $(id -u) -eq 0 ]] && command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -u postgres "$@"
  else
    deploy_error "need root or sudo to run '$*' as the postgres user"
    return 1
  fi
}

# Installs Debian packages; apt's chatter goes to stderr.
deploy_apt_install() {
  deploy_log "installing $* with apt-get"
  deploy_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || {
    deploy_error "apt-get update failed (no network or no apt sources?)"
    return 1
  }
  deploy_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 || {
    deploy_error "apt-get install $* failed"
    return 1
  }
}

# Succeeds when Redis on 127.0.0.1:6379 answers PING (without redis-cli, bash's /dev/tcp does).
deploy_redis_pong() {
  local reply
  if command -v redis-cli >/dev/null 2>&1; then
    reply=$(timeout 3 redis-cli -h "$DEPLOY_REDIS_HOST" -p "$DEPLOY_REDIS_PORT" ping 2>/dev/null) || return 1
  else
    # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
    reply=$(timeout 3 bash -c '
      exec 3<>"/dev/tcp/$0/$1" || exit 1
      printf "PING\r\n" >&3
      IFS= read -r line <&3 && printf "%s" "$line"' "$DEPLOY_REDIS_HOST" "$DEPLOY_REDIS_PORT" 2>/dev/null) || return 1
    reply=${reply#+}
    reply=${reply%$'\r'}
  fi
  [[ $reply == PONG ]]
}

# True unless the variable named $1 holds a URL that is not the local default: a Redis or
# PostgreSQL elsewhere (a container, a managed service) is not ours to install or start.
# $2 is a pattern matching the local default.
deploy_is_local_url() {
  local value=${!1:-}
  [[ -z $value ]] && return 0
  # shellcheck disable=SC2053 # $2 is a glob on purpose
  [[ $value == $2 ]]
}

ensure_redis() {
  if ! deploy_is_local_url REDIS_URL 'redis://@(127.0.0.1|localhost):6379?(/*)'; then
    deploy_log "REDIS_URL points at another Redis; not managing a local one"
    return 0
  fi
  if deploy_redis_pong; then
    deploy_log "Redis is up on $DEPLOY_REDIS_HOST:$DEPLOY_REDIS_PORT"
    return 0
  fi

  if ! command -v redis-server >/dev/null 2>&1; then
    deploy_apt_install redis-server || return 1
    # The package may have started its own service (where systemd runs).
    if deploy_redis_pong; then
      deploy_log "Redis is up on $DEPLOY_REDIS_HOST:$DEPLOY_REDIS_PORT"
      return 0
    fi
  fi

  # A throwaway development instance: no persistence, logs next to the services' logs.
  local dir="$DEPLOY_RUN_DIR/redis"
  local logfile="$DEPLOY_RUN_DIR/redis.log"
  mkdir -p "$dir" || {
    deploy_error "cannot create $dir"
    return 1
  }
  deploy_log "starting redis-server on $DEPLOY_REDIS_HOST:$DEPLOY_REDIS_PORT (log: $logfile)"
  redis-server --daemonize yes --bind "$DEPLOY_REDIS_HOST" --port "$DEPLOY_REDIS_PORT" \
    --save "" --appendonly no --dir "$dir" --logfile "$logfile" >&2 || {
    deploy_error "redis-server failed to start; see $logfile"
    return 1
  }
  local i
  for ((i = 0; i < 50; i++)); do
    if deploy_redis_pong; then
      deploy_log "Redis is up on $DEPLOY_REDIS_HOST:$DEPLOY_REDIS_PORT"
      return 0
    fi
    sleep 0.2
  done
  deploy_error "Redis did not answer on $DEPLOY_REDIS_HOST:$DEPLOY_REDIS_PORT within 10 s (port taken by something else?); see $logfile"
  return 1
}

# Succeeds when PostgreSQL accepts connections on 127.0.0.1:5432.
deploy_pg_ready() {
  command -v pg_isready >/dev/null 2>&1 &&
    pg_isready -q -h "$DEPLOY_PG_HOST" -p "$DEPLOY_PG_PORT" -t 3
}

# Succeeds when user postgres connects over TCP without a password (-w: never prompt).
deploy_pg_trusts_tcp() {
  PGCONNECT_TIMEOUT=5 psql -w -X -q -h "$DEPLOY_PG_HOST" -p "$DEPLOY_PG_PORT" -U postgres \
    -d postgres -tAc 'SELECT 1' >/dev/null 2>&1
}

# Starts the Debian cluster that should listen on port 5432, creating one if there is none.
deploy_pg_start_cluster() {
  if ! command -v pg_lsclusters >/dev/null 2>&1; then
    deploy_error "pg_lsclusters not found: is postgresql-common installed?"
    return 1
  fi
  local version cluster
  read -r version cluster < <(pg_lsclusters -h 2>/dev/null | awk -v port="$DEPLOY_PG_PORT" '$3 == port { print $1, $2; exit }')
  if [[ -z ${version:-} ]]; then
    # No cluster on our port: create one with the newest installed server.
    version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
    cluster=$DEPLOY_PG_CLUSTER
    if [[ -z $version ]]; then
      deploy_error "no PostgreSQL server found under /usr/lib/postgresql"
      return 1
    fi
    if [[ -d /etc/postgresql/$version/$cluster ]]; then
      deploy_error "cluster $version/$cluster exists but is not on port $DEPLOY_PG_PORT; change its port or point DATABASE_URL at it"
      return 1
    fi
    deploy_log "creating PostgreSQL cluster $version/$cluster on port $DEPLOY_PG_PORT"
    deploy_as_root pg_createcluster "$version" "$cluster" --port "$DEPLOY_PG_PORT" >&2 || {
      deploy_error "pg_createcluster $version $cluster failed"
      return 1
    }
  fi
  deploy_log "starting PostgreSQL cluster $version/$cluster"
  # --skip-systemctl-redirect: start it directly, also where systemd is not running (containers).
  deploy_as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start >&2 || {
    deploy_error "pg_ctlcluster $version $cluster start failed; see /var/log/postgresql/postgresql-$version-$cluster.log"
    return 1
  }
}

# DEVELOPMENT MACHINE ONLY: lets user postgres connect from this host over TCP without a
# password by putting `trust` rules for 127.0.0.1 and ::1 first in pg_hba.conf, then reloads.
# Debian's default asks for a password (scram-sha-256) on host connections. Never do this on a
# server that holds real data or that other users can log in to.
deploy_pg_trust_local_tcp() {
  local hba
  hba=$(deploy_as_postgres psql -X -q -p "$DEPLOY_PG_PORT" -tAc 'SHOW hba_file' 2>/dev/null) || hba=
  if [[ -z $hba ]]; then
    deploy_error "user postgres cannot connect over TCP without a password, and pg_hba.conf cannot be found through the local socket; set DATABASE_URL with a password"
    return 1
  fi
  if deploy_as_root grep -q 'added by deploy/lib.sh' "$hba"; then
    deploy_error "user postgres still cannot connect over TCP although $hba trusts it; check the server log"
    return 1
  fi
  deploy_warn "development machine: trusting TCP connections from 127.0.0.1 and ::1 as user postgres in $hba"
  deploy_as_root sed -i \
    -e '1i # added by deploy/lib.sh for DEVELOPMENT ONLY: user postgres connects from this host without a password' \
    -e '1i host    all    postgres    127.0.0.1/32    trust' \
    -e '1i host    all    postgres    ::1/128         trust' \
    "$hba" || {
    deploy_error "cannot edit $hba"
    return 1
  }
  deploy_as_postgres psql -X -q -p "$DEPLOY_PG_PORT" -tAc 'SELECT pg_reload_conf()' >/dev/null || {
    deploy_error "cannot reload PostgreSQL's configuration"
    return 1
  }
  local i
  for ((i = 0; i < 10; i++)); do
    deploy_pg_trusts_tcp && return 0
    sleep 0.5
  done
  deploy_error "user postgres still cannot connect over TCP after editing $hba"
  return 1
}

ensure_postgres() {
  if ! deploy_is_local_url DATABASE_URL 'postgres?(ql)://postgres@@(127.0.0.1|localhost):5432/dispatch'; then
    deploy_log "DATABASE_URL points at another database; not managing a local PostgreSQL"
    return 0
  fi

  if ! deploy_pg_ready; then
    if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || ! command -v psql >/dev/null 2>&1; then
      deploy_apt_install postgresql || return 1
    fi
    # The package starts its cluster where systemd runs; elsewhere we start it ourselves.
    if ! deploy_pg_ready; then
      deploy_pg_start_cluster || return 1
    fi
    local i
    for ((i = 0; i < 30; i++)); do
      deploy_pg_ready && break
      sleep 0.5
    done
    if ! deploy_pg_ready; then
      deploy_error "PostgreSQL did not accept connections on $DEPLOY_PG_HOST:$DEPLOY_PG_PORT within 15 s; see /var/log/postgresql/"
      return 1
    fi
  fi

  if ! deploy_pg_trusts_tcp; then
    deploy_pg_trust_local_tcp || return 1
  fi

  local exists
  exists=$(psql -w -X -q -h "$DEPLOY_PG_HOST" -p "$DEPLOY_PG_PORT" -U postgres -d postgres \
    -tAc "SELECT 1 FROM pg_database WHERE datname = '$DEPLOY_PG_DB'" 2>/dev/null) || {
    deploy_error "cannot query PostgreSQL on $DEPLOY_PG_HOST:$DEPLOY_PG_PORT as user postgres"
    return 1
  }
  if [[ $exists != 1 ]]; then
    deploy_log "creating database $DEPLOY_PG_DB"
    createdb -w -h "$DEPLOY_PG_HOST" -p "$DEPLOY_PG_PORT" -U postgres "$DEPLOY_PG_DB" || {
      deploy_error "createdb $DEPLOY_PG_DB failed"
      return 1
    }
  fi
  deploy_log "PostgreSQL is up on $DEPLOY_PG_HOST:$DEPLOY_PG_PORT with database $DEPLOY_PG_DB"
}

ensure_postgres_optional() {
  if ! ensure_postgres; then
    deploy_warn "continuing without PostgreSQL: dispatch works, the payroll and shift endpoints answer 503 until it is available"
  fi
  return 0
}

# Makes cargo reachable when rustup installed it but the shell profile has not been reloaded.
ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1 && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck disable=SC1091 # written by rustup
    . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || {
    deploy_error "cargo not found: install Rust (https://rustup.rs) and try again"
    return 1
  }
}

# Deletes every Redis key and ledger row of the namespaces matching $1 (a Redis glob; `*`
# becomes `%` for PostgreSQL), on REDIS_URL and DATABASE_URL. Best effort: a failure is ignored.
delete_namespaces() {
  local glob=$1 like=${1//\*/%}
  timeout 120 redis-cli -u "$REDIS_URL" --scan --pattern "{$glob}:*" 2>/dev/null |
    timeout 120 xargs -r -d '\n' -n 500 redis-cli -u "$REDIS_URL" UNLINK >/dev/null 2>&1 || true
  if command -v psql >/dev/null 2>&1; then
    timeout 300 psql -w -X -q "$DATABASE_URL" -v ON_ERROR_STOP=0 >/dev/null 2>&1 <<SQL || true
DELETE FROM ticket_completions WHERE namespace LIKE '$like';
DELETE FROM shifts WHERE namespace LIKE '$like';
DELETE FROM tickets WHERE namespace LIKE '$like';
DELETE FROM ledger_rejects WHERE namespace LIKE '$like';
DELETE FROM ledger_offsets WHERE namespace LIKE '$like';
SQL
  fi
}

# cargo, with rustfmt and clippy (rustup's default profile has both), for the style checks.
ensure_cargo_style() {
  ensure_cargo || return 1
  local tool
  for tool in fmt clippy; do
    cargo "$tool" --version >/dev/null 2>&1 || {
      deploy_error "cargo $tool not found: run 'rustup component add rustfmt clippy' and try again"
      return 1
    }
  done
}

# The Python checkers the tests run (tests/python/requirements.txt: the Standard Webhooks
# reference implementation, ...) in a virtual environment, deploy/.venv, made (or brought up to
# date) from PyPI; E2E_PYTHON is exported for the tests. Debian's python3-venv is installed if
# the interpreter lacks venv.
# Node.js and npm, from Debian if missing.
ensure_node() {
  command -v npm >/dev/null 2>&1 || deploy_apt_install nodejs npm
}

# `npm ci` in folder $1 from its committed lockfile, when that lockfile changed since the last.
npm_install() {
  local dir=$1
  ensure_node || return 1
  cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed" && return 0
  deploy_log "installing $dir/package-lock.json into $dir/node_modules (from npm)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || {
    deploy_error "npm could not install $dir/package-lock.json"
    return 1
  }
  cp "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed"
}

# The web apps (web/: the agents' app at /app/), built from the npm registry into web/dist,
# which the services serve (WEB_DIR). `npm ci` runs when the lockfile changed.
ensure_web_build() {
  npm_install web || return 1
  deploy_log "building the web apps (npm run build in web/)"
  (cd web && npm run --silent build >/dev/null) || {
    deploy_error "the web apps did not build: cd web && npm run build"
    return 1
  }
}

# Debian's Chromium, for the browser tests (Playwright drives it; no browser is downloaded).
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 || deploy_apt_install chromium
}

# The JavaScript checkers of the tests (tests/node: @asyncapi/parser), installed from the npm
# registry with `npm ci` from the committed lockfile; Node.js and npm from Debian if missing.
ensure_node_tools() {
  npm_install tests/node
}

ensure_python_tools() {
  local venv=deploy/.venv requirements=tests/python/requirements.txt
  command -v python3 >/dev/null 2>&1 || deploy_apt_install python3 || return 1
  if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv" 2>/dev/null || {
      rm -rf "$venv"
      deploy_apt_install python3-venv || return 1
      python3 -m venv "$venv" || return 1
    }
  fi
  if ! cmp -s "$requirements" "$venv/requirements.installed"; then
    deploy_log "installing the Python checkers into $venv (from PyPI)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" || {
      deploy_error "pip could not install $requirements"
      return 1
    }
    cp "$requirements" "$venv/requirements.installed"
  fi
  E2E_PYTHON=$PWD/$venv/bin/python
  export E2E_PYTHON
}

# Stops the given PIDs (those still alive): SIGTERM, then SIGKILL after 20 s.
stop_pids() {
  local pids=() pid i alive
  for pid in "$@"; do
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && pids+=("$pid")
  done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive=0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      deploy_warn "process $pid did not stop within 20 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

# Sets PORT to a TCP port on 127.0.0.1 that nothing listens on, from $1 upwards (at most 200
# tried), and not among those already handed out.
TAKEN_PORTS=" "
PORT=
spare_port() {
  local port
  for ((port = $1; port < $1 + 200; port++)); do
    [[ $TAKEN_PORTS == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      TAKEN_PORTS+="$port "
      PORT=$port
      return 0
    fi
  done
  deploy_error "no free port on 127.0.0.1 in $1..$(($1 + 199))"
  return 1
}

# Waits (at most 30 s) until $4/readyz answers 200 from the service $1 (process $2); on failure,
# says why and shows the end of its log $3.
wait_ready() {
  local name=$1 pid=$2 log=$3 url=$4/readyz i
  for ((i = 0; i < 60; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      deploy_error "$name exited during start-up; last lines of $log:"
      tail -n 20 "$log" >&2
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  deploy_error "$name did not answer 200 at $url within 30 s; last lines of $log:"
  tail -n 20 "$log" >&2
  return 1
}

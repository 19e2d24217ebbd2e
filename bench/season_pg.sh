#!/usr/bin/env bash
# A PostgreSQL 15 server of its own for the season-scale run (bench/season_scale.py), set as a
# season's deployment would be (docs/operations.md "PostgreSQL for a season"): shared_buffers a
# quarter of the machine's memory, WAL sized so that checkpoints are timed, not forced by volume.
#
#   bench/season_pg.sh DIR [PORT]    # prints the URL to put in CUSTODY_BENCH_PG
#   bench/season_pg.sh --stop DIR
set -euo pipefail
if [[ "${1:-}" == "--stop" ]]; then
  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$2/data" -m fast -w stop
  exit 0
fi
dir=$(realpath -m "$1"); port=${2:-5440}
mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
mkdir -p "$dir" && chown postgres "$dir"
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null
cat >> "$dir/data/postgresql.auto.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_buffers = $((mem_kb / 4 / 1024))MB
effective_cache_size = $((mem_kb / 2 / 1024))MB
max_wal_size = 16GB
checkpoint_timeout = 15min
CONF
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
echo "postgresql://postgres@127.0.0.1:$port/postgres"

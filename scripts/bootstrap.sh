#!/usr/bin/env bash
# Installs everything Grid Atlas needs on a Debian/Ubuntu machine; safe to run again (it only
# does what is missing). Called by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. System packages: PostgreSQL + PostGIS + pgRouting, Chromium for browser tests, osm2pgsql
#    for the import benchmark, Node.js/npm for the offline web assets, wrk for the API load.
pg_major=15
need=()
[ -f "/usr/lib/postgresql/$pg_major/bin/initdb" ] || need+=("postgresql-$pg_major")
[ -f "/usr/share/postgresql/$pg_major/extension/postgis.control" ] || need+=("postgresql-$pg_major-postgis-3")
[ -f "/usr/share/postgresql/$pg_major/extension/pgrouting.control" ] || need+=("postgresql-$pg_major-pgrouting")
# pg_auto_failover: monitor + primary + secondary for `gridatlas db ha` (bench/failover.py)
[ -f "/usr/share/postgresql/$pg_major/extension/pgautofailover.control" ] || need+=("postgresql-$pg_major-auto-failover")
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v osm2pgsql >/dev/null 2>&1 || need+=(osm2pgsql)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # HTTP load for bench/api_load.py
python3 -c "import ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
# CJK glyphs for Chinese labels in headless Chromium (screenshots, browser tests)
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
# WeasyPrint's libraries (the community reports' PDF) and pdftoppm (their tests)
ldconfig -p | grep -q 'libpangoft2-1.0.so.0' || need+=(libpangoft2-1.0-0)
ldconfig -p | grep -q 'libharfbuzz-subset.so.0' || need+=(libharfbuzz-subset0)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
if [ ${#need[@]} -gt 0 ]; then
  say "installing system packages: ${need[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# 2. Python virtual environment, reinstalled only when pyproject.toml changes.
py=${PYTHON:-python3}
if [ ! -x .venv/bin/pip ]; then  # a failed earlier venv leaves python without pip
  rm -rf .venv
  say "creating .venv"
  "$py" -m venv .venv
fi
stamp=.venv/.gridatlas-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing Python dependencies"
  log=.venv/pip-install.log
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[dev]'; } >"$log" 2>&1; then
    tail -n 30 "$log"; say "pip install failed (full log: $log)"; exit 1
  fi
  echo "$want" > "$stamp"
fi

# 3. Web assets (Leaflet and friends) from the npm registry, served by the app itself.
nstamp=node_modules/.gridatlas-installed
nwant=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$nstamp" ] || [ "$(cat "$nstamp")" != "$nwant" ]; then
  say "installing web assets (npm ci)"
  npm ci --silent --no-audit --no-fund >/dev/null
  echo "$nwant" > "$nstamp"
fi
say "ready"

#!/usr/bin/env bash
# Run the whole test suite the way CI does: install, start what the tests
# need that is not running yet, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

log() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }

# PostgreSQL and Redis run on the CI machine already; start them if they are down.
if ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
fi

export TRIALPACS_TESTDATA=${TRIALPACS_TESTDATA:-$(cd .. && pwd)/shared/testdata}
log "ruff"
.venv/bin/ruff check src tests bench
log "mypy"
.venv/bin/mypy
log "pytest"
exec .venv/bin/pytest -q "$@"

#!/bin/sh
# Wait for the database, then (mode "migrate") apply the migrations, or (mode "wait")
# wait until another job has applied them. Used by the compose services:
#   migrate: scripts/prestart.sh migrate     ingest: scripts/prestart.sh wait && ...
# Retries every 2 s, DEEPREGIME_WAIT_TRIES times (default 90), then fails.
set -eu
mode=${1:-migrate}
tries=${DEEPREGIME_WAIT_TRIES:-90}

database_state() {
    python - <<'PY'
import sys

from app.settings import get_settings
from store.db import make_engine
from store.migrations import current_revision, head_revision

engine = make_engine(get_settings().database_url, timeout_s=2)
try:
    current = current_revision(engine)
except Exception as error:  # any failure means: not reachable yet
    print(f"unreachable ({error.__class__.__name__})")
    sys.exit(0)
finally:
    engine.dispose()
print("current" if current == head_revision() else f"behind (at {current})")
PY
}

attempt=1
while :; do
    state=$(database_state)
    case "$mode:$state" in
        migrate:current | migrate:behind* | wait:current) break ;;
    esac
    if [ "$attempt" -ge "$tries" ]; then
        echo "prestart: database still $state after $tries tries" >&2
        exit 1
    fi
    echo "prestart: database $state, retrying ($attempt/$tries)" >&2
    attempt=$((attempt + 1))
    sleep 2
done

if [ "$mode" = migrate ]; then
    deepregime db upgrade
fi
echo "prestart: database ready ($mode)"

#!/usr/bin/env bash
# End-to-end check of the image and the compose stack with podman:
#   build the image -> compose up (postgres, migrate, app) -> ingest job on the mounted
#   CSV folder -> a valid /regime/today from the app container -> model activation ->
#   tear everything down (always, via trap).
#
#   scripts/container_test.sh            # POSTGRES_IMAGE defaults to the local stand-in
#
# Needs podman and podman-compose (../shared/tools/containers/setup.sh) and the CSV
# folder ../shared/data/market (or DEEPREGIME_DATA_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

export POSTGRES_IMAGE=${POSTGRES_IMAGE:-localhost/postgres-standin:15}
export DEEPREGIME_IMAGE=${DEEPREGIME_IMAGE:-localhost/deepregime:container-test}
export DEEPREGIME_PORT=${DEEPREGIME_PORT:-18080}
export DEEPREGIME_DATA_DIR=${DEEPREGIME_DATA_DIR:-$(cd ../shared/data/market && pwd)}
export DEEPREGIME_API_KEY=${DEEPREGIME_API_KEY:-container-test-key-$RANDOM$RANDOM}
# The real data ends on 2024-12-31: readiness would (rightly) call it stale.
export DEEPREGIME_MAX_DATA_LAG_DAYS=10000
PROJECT=${PROJECT:-deepregime-ct-$$}

compose() { podman-compose --project-name "$PROJECT" -f docker-compose.yml "$@"; }
step() { printf '\n=== %s\n' "$*"; }

cleanup() {
    status=$?
    step "tear down (exit status $status)"
    if [ "$status" -ne 0 ]; then
        podman logs "$(container_of app)" 2>&1 | tail -40 || true
    fi
    compose --profile ingest down -v >/dev/null 2>&1 || true
    exit "$status"
}
trap cleanup EXIT

container_of() {  # id of the (latest) container of a compose service
    podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" | head -1
}

in_app() {  # run python inside the app container
    podman exec "$(container_of app)" python -c "$1"
}

step "build $DEEPREGIME_IMAGE"
podman build --pull=never --network host --format docker -t "$DEEPREGIME_IMAGE" . | tail -3

# podman 4.3 cannot start a container whose dependency has dependencies of its own
# ("depends on container ... not found in input list"), so the services come up in
# order here with --no-deps; each still waits for the database by itself.
step "compose up: db and the migration job"
compose up -d --no-build db migrate

step "wait for the migration job"
migrate=$(container_of migrate)
test "$(podman wait "$migrate")" = 0
podman logs "$migrate" 2>&1 | tail -2

step "compose up: app"
compose up -d --no-build --no-deps app

step "ingest job: CSV folder $DEEPREGIME_DATA_DIR mounted read-only at /data"
compose --profile ingest run --rm --no-deps ingest 2>&1 | tail -4

step "wait for the app's /health"
for _ in $(seq 1 60); do
    if in_app "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)" 2>/dev/null; then
        break
    fi
    sleep 2
done

step "GET /regime/today from the app container"
in_app "
import json, urllib.request
body = json.load(urllib.request.urlopen('http://127.0.0.1:8000/regime/today', timeout=10))
print(json.dumps(body, indent=1)[:1500])
assert body['as_of'] == '2024-12-31', body['as_of']
assert body['regime'] in ('risk-on', 'caution', 'risk-off'), body['regime']
assert body['exposure'] in (0.0, 0.5, 1.0), body['exposure']
assert body['rules']['available'] == 3 and body['stale'] is True
print('valid /regime/today:', body['as_of'], body['regime'], body['exposure'])
"

step "GET /ready and the same answer through the published port"
in_app "
import json, urllib.request
print(json.dumps(json.load(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=10))))
"
python3 -c "
import json, urllib.request
body = json.load(urllib.request.urlopen('http://127.0.0.1:$DEEPREGIME_PORT/regime/today', timeout=10))
print('host port $DEEPREGIME_PORT:', body['as_of'], body['regime'], body['exposure'])
"

step "activate the baked-in model through the admin API"
in_app "
import json, os, urllib.request
models = json.load(urllib.request.urlopen('http://127.0.0.1:8000/models', timeout=10))
print('models:', [m['version'] for m in models['models']], 'loaded:', models['loaded'])
if models['models']:
    version = models['models'][0]['version']
    request = urllib.request.Request(
        f'http://127.0.0.1:8000/admin/models/{version}/activate', method='POST',
        headers={'X-API-Key': os.environ['DEEPREGIME_API_KEY']})
    print(json.load(urllib.request.urlopen(request, timeout=300)))
    today = json.load(urllib.request.urlopen(
        'http://127.0.0.1:8000/regime/today?policy=ensemble', timeout=10))
    print('ensemble:', today['regime'], today['exposure'], 'model:', today['model'])
    assert today['model']['available'] is True
"

step "container test passed"

#!/usr/bin/env bash
# End-to-end check of the image and README's compose commands, exactly as written:
#   build the image -> every `docker compose ...` line of README's "Deployment" block, run
#   with Docker Compose or, where podman replaces Docker, with podman-compose -> a valid
#   /regime/today, a 200 /ready that reports the (old) shipped data as stale, the
#   dashboard and the offline docs from the app container -> model activation -> tear
#   everything down (always, via trap).
#
#   scripts/container_test.sh            # POSTGRES_IMAGE defaults to the local stand-in
#
# Needs podman and podman-compose (../shared/tools/containers/setup.sh) or Docker, and
# the CSV folder ../shared/data/market (or DEEPREGIME_DATA_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

export POSTGRES_IMAGE=${POSTGRES_IMAGE:-localhost/postgres-standin:15}
export DEEPREGIME_IMAGE=${DEEPREGIME_IMAGE:-localhost/deepregime:container-test}
export DEEPREGIME_PORT=${DEEPREGIME_PORT:-18080}
export DEEPREGIME_DATA_DIR=${DEEPREGIME_DATA_DIR:-$(cd ../shared/data/market && pwd)}
export DEEPREGIME_API_KEY=${DEEPREGIME_API_KEY:-container-test-key-$RANDOM$RANDOM}
# README's commands name no project: the project comes from the environment.
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-deepregime-ct-$$}

if command -v podman-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
    engine=podman
    compose_command=podman-compose
else
    engine=docker
    compose_command="docker compose"
fi
step() { printf '\n=== %s\n' "$*"; }

cleanup() {
    status=$?
    step "tear down (exit status $status)"
    if [ "$status" -ne 0 ]; then
        $engine logs "$(container_of app)" 2>&1 | tail -40 || true
    fi
    $compose_command --profile ingest down -v >/dev/null 2>&1 || true
    exit "$status"
}
trap cleanup EXIT

container_of() {  # id of the (latest) container of a compose service
    $engine ps -a -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
        --filter "label=com.docker.compose.service=$1" | head -1
}

in_app() {  # run python inside the app container
    $engine exec "$(container_of app)" python -c "$1"
}

step "build $DEEPREGIME_IMAGE"
if [ "$engine" = podman ]; then
    podman build --pull=never --network host --format docker -t "$DEEPREGIME_IMAGE" . | tail -3
else
    docker build -t "$DEEPREGIME_IMAGE" . | tail -3
fi

# The compose lines of README's "Deployment" block, as written (a `#` comment ends each).
mapfile -t readme_commands < <(
    sed -n '/^## Deployment/,/^## /p' README.md | sed -n 's/^    \(docker compose [^#]*\).*/\1/p' \
        | sed 's/[[:space:]]*$//'
)
test "${#readme_commands[@]}" -ge 2 || { echo "no compose commands found in README" >&2; exit 1; }

for command in "${readme_commands[@]}"; do
    step "README: $command   (as: ${command/docker compose/$compose_command})"
    log=$(mktemp)
    # shellcheck disable=SC2086 # the README line is split into words as a shell would
    if ! ${command/docker compose/$compose_command} >"$log" 2>&1; then
        tail -30 "$log"
        exit 1
    fi
    grep -v -e systemd -e syslog "$log" | tail -6 || true
    rm -f "$log"
done

step "wait for the app's /health"
for _ in $(seq 1 60); do
    if in_app "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)" 2>/dev/null; then
        break
    fi
    sleep 2
done

step "GET /regime/today and /ready from the app container"
in_app "
import json, urllib.request
body = json.load(urllib.request.urlopen('http://127.0.0.1:8000/regime/today', timeout=10))
print(json.dumps(body, indent=1)[:1500])
assert body['as_of'] == '2024-12-31', body['as_of']
assert body['regime'] in ('risk-on', 'caution', 'risk-off'), body['regime']
assert body['exposure'] in (0.0, 0.5, 1.0), body['exposure']
assert body['rules']['available'] == 3 and body['stale'] is True
print('valid /regime/today:', body['as_of'], body['regime'], body['exposure'])
# The shipped data ends on 2024-12-31: stale, still served, readiness degraded (200).
ready = urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=10)
report = json.load(ready)
print(json.dumps(report))
assert ready.status == 200 and report['status'] == 'degraded', report
assert report['checks']['data']['ok'] is False and 'stale' in report['checks']['data']['detail']
print('ready: 200 degraded (stale data)')
"

step "the dashboard and the offline docs from the app container"
in_app "
import urllib.request
for path in ('/dashboard', '/dashboard/static/dashboard.js', '/docs', '/docs/static/swagger-ui-bundle.js', '/redoc'):
    answer = urllib.request.urlopen('http://127.0.0.1:8000' + path, timeout=60)
    assert answer.status == 200, path
    print(path, answer.status)
"

step "README's curl through the published port"
curl -sf "localhost:$DEEPREGIME_PORT/regime/today" | python3 -c "
import json, sys
body = json.load(sys.stdin)
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

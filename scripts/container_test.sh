#!/usr/bin/env bash
# End-to-end check of the image and README's compose commands, exactly as written:
#   build the image -> its installed package equals the project's wheel, file for file ->
#   every `docker compose ...` line of README's "Deployment" block, run with Docker
#   Compose or, where podman replaces Docker, with podman-compose -> a valid
#   /regime/today from each API replica and through the proxy from both, a 200 /ready
#   that reports the (old) shipped data as stale, the dashboard and the offline docs ->
#   a sweep on the Dask cluster (profile "dask") -> one replica restarted under load with
#   no failed request -> model activation -> tear everything down (always, via trap).
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
export DEEPREGIME_PROXY_IMAGE=${DEEPREGIME_PROXY_IMAGE:-localhost/deepregime-proxy:container-test}
# README's Dask block exports this before its `up`; exported here for every command.
export DEEPREGIME_DASK_SCHEDULER=tcp://scheduler:8786

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
        for service in api-1 proxy worker; do
            echo "--- logs of $service"
            $engine logs "$(container_of $service)" 2>&1 | tail -30 || true
        done
    fi
    $compose_command --profile ingest --profile dask down -v >/dev/null 2>&1 || true
    rm -rf "$wheel_dir"
    exit "$status"
}
trap cleanup EXIT

container_of() {  # id of the (latest) container of a compose service
    $engine ps -a -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
        --filter "label=com.docker.compose.service=$1" | head -1
}

in_app() {  # run python inside the first API replica (or the service named by $2)
    $engine exec "$(container_of "${2:-api-1}")" python -c "$1"
}
wheel_dir=$(mktemp -d)

step "build $DEEPREGIME_IMAGE and the proxy"
if [ "$engine" = podman ]; then
    podman build --pull=never --network host --format docker -t "$DEEPREGIME_IMAGE" . | tail -3
    podman build --pull=never --network host --format docker -t "$DEEPREGIME_PROXY_IMAGE" deploy/proxy | tail -3
else
    docker build -t "$DEEPREGIME_IMAGE" . | tail -3
    docker build -t "$DEEPREGIME_PROXY_IMAGE" deploy/proxy | tail -3
fi

step "the image's installed package is the project's wheel, file for file"
# Built from a copy of the files git sees (tracked, or new and not ignored): a stale
# build/ folder of an earlier build must not add files the image would not have.
mkdir "$wheel_dir/src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$wheel_dir/src"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$wheel_dir" "$wheel_dir/src" >/dev/null
python3 - "$wheel_dir"/deepregime-*.whl > "$wheel_dir/wheel.txt" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
print("\n".join(sorted(n for n in names if ".dist-info/" not in n)))
PY
$engine run --rm --entrypoint python "$DEEPREGIME_IMAGE" -c "
import importlib, importlib.metadata as metadata
files = [str(f) for f in metadata.files('deepregime') if '.dist-info/' not in str(f)
         and not str(f).endswith('.pyc') and not str(f).startswith('..')]
print('\n'.join(sorted(files)))
# Every package the wheel ships imports in the serving image, except training (torch).
for package in sorted({f.split('/')[0] for f in files if f.endswith('__init__.py')} - {'training'}):
    importlib.import_module(package)
" > "$wheel_dir/image.txt"
if ! diff -u "$wheel_dir/wheel.txt" "$wheel_dir/image.txt"; then
    echo "the image's installed files differ from the wheel's" >&2
    exit 1
fi
echo "image = wheel: $(wc -l < "$wheel_dir/wheel.txt") files, packages: $(cut -d/ -f1 "$wheel_dir/wheel.txt" | sort -u | tr '\n' ' ')"

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

wait_healthy() {  # until the service's /health answers inside its container
    for _ in $(seq 1 90); do
        if in_app "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 2
    done
    echo "$1 never answered /health" >&2
    return 1
}
step "wait for both replicas' /health"
wait_healthy api-1
wait_healthy api-2

for replica in api-1 api-2; do
    step "GET /regime/today from $replica"
    in_app "
import json, urllib.request
body = json.load(urllib.request.urlopen('http://127.0.0.1:8000/regime/today', timeout=10))
assert body['as_of'] == '2024-12-31' and body['regime'] in ('risk-on', 'caution', 'risk-off'), body
print('$replica:', body['as_of'], body['regime'], body['exposure'])
" "$replica"
done

step "GET /regime/today and /ready from the API replica"
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

step "the dashboard and the offline docs from the API replica"
in_app "
import urllib.request
for path in ('/dashboard', '/dashboard/static/dashboard.js', '/docs', '/docs/static/swagger-ui-bundle.js', '/redoc'):
    answer = urllib.request.urlopen('http://127.0.0.1:8000' + path, timeout=60)
    assert answer.status == 200, path
    print(path, answer.status)
"

step "README's curl through the published port (the proxy) reaches both replicas"
python3 - "$DEEPREGIME_PORT" <<'PY'
import json, sys, time, urllib.error, urllib.request
# The proxy marks a replica up after two passed health checks (1 s apart) once compose's
# DNS has the replica's address: until then it answers 503. Wait for both, bounded.
deadline, up = time.monotonic() + 90, set()
while up != {"api-1", "api-2"} and time.monotonic() < deadline:
    try:
        up.add(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=5).headers["X-Served-By"])
    except (urllib.error.URLError, ConnectionError) as error:
        print("proxy not ready yet:", error)
        time.sleep(1)
print("the proxy has both replicas up:", sorted(up))
served_by = set()
for _ in range(20):
    answer = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/regime/today", timeout=10)
    body = json.load(answer)
    assert body["as_of"] == "2024-12-31", body
    served_by.add(answer.headers["X-Served-By"])
print("through the proxy:", body["as_of"], body["regime"], body["exposure"], "served by", sorted(served_by))
assert served_by == {"api-1", "api-2"}, served_by
PY

step "a sweep on the Dask cluster (profile dask)"
python3 - "$DEEPREGIME_PORT" <<'PY'
import json, os, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
request = {
    "name": "container round trip",
    "grid": {"trend": {"windows": [100, 200]}, "volatility": {"thresholds": [1.0, 1.05]}},
    "pbo_blocks": 4,
}
# Sweeps spend compute: they need a research (or admin) key.
posted = urllib.request.Request(base + "/sweeps", data=json.dumps(request).encode(),
                                headers={"Content-Type": "application/json",
                                         "X-API-Key": os.environ["DEEPREGIME_API_KEY"]},
                                method="POST")
sweep = json.load(urllib.request.urlopen(posted, timeout=30))
deadline = time.monotonic() + 300
while sweep["status"] in ("queued", "running") and time.monotonic() < deadline:
    time.sleep(2)
    sweep = json.load(urllib.request.urlopen(f"{base}/sweeps/{sweep['id']}", timeout=10))
print("sweep", sweep["id"], sweep["status"], sweep["done_variants"], "of", sweep["variants"],
      "on", sweep["scheduler"], sweep["message"] or "")
assert sweep["status"] == "done", sweep
assert sweep["scheduler"] == "tcp://scheduler:8786", sweep["scheduler"]
PY

step "restart api-1 under load through the proxy: no request may fail"
python3 - "$DEEPREGIME_PORT" <<'PY' > "$wheel_dir/load.txt" 2>&1 &
import collections, sys, threading, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/regime/today"
stop_at = time.monotonic() + 40
outcomes = collections.Counter()
lock = threading.Lock()
def client():
    while time.monotonic() < stop_at:
        try:
            answer = urllib.request.urlopen(url, timeout=15)
            outcome = f"{answer.status} {answer.headers['X-Served-By']}"
        except Exception as error:  # every failure counts, whatever its kind
            outcome = f"failed: {error}"
        with lock:
            outcomes[outcome] += 1
threads = [threading.Thread(target=client) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(dict(outcomes))
failed = sum(n for outcome, n in outcomes.items() if not outcome.startswith("200 "))
print(f"requests: {sum(outcomes.values())}, failed: {failed}")
sys.exit(1 if failed else 0)
PY
load_pid=$!
sleep 5
$engine restart "$(container_of api-1)" >/dev/null
wait_healthy api-1
if ! wait "$load_pid"; then
    cat "$wheel_dir/load.txt"
    echo "requests failed while api-1 restarted" >&2
    exit 1
fi
cat "$wheel_dir/load.txt"
grep -q "200 api-1" "$wheel_dir/load.txt" || { echo "api-1 served nothing under load" >&2; exit 1; }

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

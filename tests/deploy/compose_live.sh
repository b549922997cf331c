#!/bin/sh
# docker-compose.yml for real, on a machine with a Docker engine and no GPU: the Ray head,
# two CPU worker containers, and tests/deploy/test_compose_live.py in the bot's container, which
# dreams through the fake Discord; halfway, this script kills the head and starts it again.
#   sh tests/deploy/compose_live.sh            (from the repository root; DISCORD_TOKEN is not used)
# Leaves nothing running. Set WEIGHTS=none where Keras' weights download can't be reached.
set -eu
project=dreamlive
if docker compose version >/dev/null 2>&1; then compose="docker compose"; else compose=docker-compose; fi
export DREAM_WEIGHTS=random DREAM_WORKER_CPUS=1 DREAM_RAY_POLL=2 DREAM_RAY_RECONNECT=2
dc() { $compose -p "$project" --profile cpu "$@"; }
log=$(mktemp)
made_env=
[ -f .env ] || { : > .env; made_env=1; }  # compose reads it; the settings above win
trap 'dc down --volumes --remove-orphans >/dev/null 2>&1 || true; rm -f "$log"
      [ -z "$made_env" ] || rm -f .env' EXIT
dc build --build-arg WEIGHTS="${WEIGHTS:-imagenet}"
dc up -d --scale worker=0 --scale cpu-worker=2 ray-head cpu-worker
dc run --rm -T -v "$PWD/tests:/app/tests:ro" \
    -e DREAM_WEIGHTS -e DREAM_RAY_POLL -e DREAM_RAY_RECONNECT \
    -e DREAM_COMPOSE_LIVE=1 -e DREAM_COMPOSE_HEAD_LOSS=1 -e RAY_CLIENT_RECONNECT_GRACE_PERIOD=5 \
    bot sh -c 'pip install --quiet --user pytest==9.2.0 pytest-asyncio==1.5.0 hypothesis==6.170.17 \
        scikit-image==0.26.0 && python -m pytest -p no:cacheprovider -s -q -o log_cli=true --log-cli-level=INFO tests/deploy/test_compose_live.py' \
    >"$log" 2>&1 &
test_pid=$!
until grep -q "kill the head now" "$log"; do
    kill -0 "$test_pid" 2>/dev/null || { cat "$log"; wait "$test_pid"; exit 1; }
    sleep 1
done
echo "compose-live: killing ray-head"
dc kill ray-head
sleep 10
echo "compose-live: starting ray-head again"
dc start ray-head
status=0
wait "$test_pid" || status=$?
cat "$log"
dc ps
docker inspect -f '{{.Name}}: restarted {{.RestartCount}} times' $(dc ps -q)
exit "$status"

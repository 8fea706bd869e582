#!/usr/bin/env bash
# HTTP trigger benchmark with a real load generator (wrk, from Debian's
# packages): POST /v1/run/b3 of a deployed 3-step script on one engine (its
# steps side values: time, uuid, random), then /v1/run/e3 (three kv.get),
# keep-alive connections over loopback, each request waiting for the run's
# end. Also measures, in the same sitting, the floor of the HTTP stack
# (GET /v1/health) under the same load.
#
#   scripts/bench/trigger.sh [ENGINE FLAGS...]      e.g. --sync always
#
# Env: DURATION (default 10s), CONNS (default 64).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "trigger.sh: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/engine" ./cmd/engine
go build -o "$work/ctl" ./cmd/ctl
"$work/engine" --name bench --data-dir "$work/data" --http 127.0.0.1:0 --listen "" "$@" >"$work/engine.log" 2>&1 &
pid=$!
url=""
for _ in $(seq 100); do
  url=$(grep -o '"http":"http://[^"]*"' "$work/engine.log" | head -1 | cut -d'"' -f4 || true)
  [ -n "$url" ] && break
  sleep 0.1 # polling interval while the engine starts
done
[ -n "$url" ] || { cat "$work/engine.log" >&2; echo "trigger.sh: the engine did not start" >&2; exit 1; }
cat >"$work/b3.star" <<'STAR'
def main(input):
    return {"t": str(time.now()), "id": uuid(), "n": rand.int(1000), "who": input.get("who")}
STAR
DROVER_URL=$url "$work/ctl" deploy b3 "$work/b3.star" >/dev/null
# The same with three steps that have an outside effect (reads of the kv.*
# store): each is journaled before the run goes on, and the run from its first.
cat >"$work/e3.star" <<'STAR'
def main(input):
    return {"a": kv.get("a"), "b": kv.get("b"), "c": kv.get("c"), "who": input.get("who")}
STAR
DROVER_URL=$url "$work/ctl" deploy e3 "$work/e3.star" >/dev/null
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"who": "acme"}'
wrk.headers["Content-Type"] = "application/json"
LUA
summary() { # wrk output → req/s, p50, p99
  awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF} END {printf "%10s req/s  p50 %8s  p99 %8s  non-2xx %s\n", rps, p50, p99, (bad==""?0:bad)}'
}
echo "engine flags: ${*:-(defaults)}   duration $DURATION"
printf '%-34s' "floor: GET /v1/health, $CONNS conns"; wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$url/v1/health" | summary
printf '%-34s' "floor: GET /v1/health, 1 conn";       wrk -t1 -c1 -d"$DURATION" --latency "$url/v1/health" | summary
# One connection first: the runs of 64 connections leave seals queued (and a
# sweep after the queue overflows) that would still run during the next line.
printf '%-34s' "POST /v1/run/b3, 1 conn";             wrk -t1 -c1 -d"$DURATION" --latency -s "$work/post.lua" "$url/v1/run/b3" | summary
printf '%-34s' "POST /v1/run/b3, $CONNS conns";       wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$work/post.lua" "$url/v1/run/b3" | summary
printf '%-34s' "POST /v1/run/e3, 1 conn";             wrk -t1 -c1 -d"$DURATION" --latency -s "$work/post.lua" "$url/v1/run/e3" | summary
printf '%-34s' "POST /v1/run/e3, $CONNS conns";       wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$work/post.lua" "$url/v1/run/e3" | summary

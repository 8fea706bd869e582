#!/usr/bin/env bash
# The embedded ctl at a large history: end-to-end time of whole `ctl`
# processes on a data dir holding DATA (by default 1,000,000 steps in 100,000
# runs, made by scripts/bench/memory), beside the same commands on an empty
# data dir in the same sitting (the floor: what a ctl process costs with no
# history). Three ways, each on both data dirs:
#   background  the default: ctl talks to the background node that the first
#               command started (hyperfine's warm-up runs start it);
#   cold        the first command, which starts the background node
#               (hyperfine --prepare stops it before each run);
#   in-process  --background off: ctl starts and stops a node of its own.
# Uses hyperfine (apt-get install hyperfine).
#
#   scripts/bench/ctl.sh [DATA_DIR]
#
# DATA_DIR is copied first, so it is left as it was; without one, it is
# made (a few minutes): go run ./scripts/bench/memory -per-run 10 \
#   -steps 1000000 -keep DIR. Env: RUNS (hyperfine runs, default 20).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { echo "ctl.sh: hyperfine is not installed (apt-get install hyperfine)" >&2; exit 2; }
RUNS=${RUNS:-20}
work=$(mktemp -d)
go build -o "$work/ctl" ./cmd/ctl
ctl=$work/ctl
trap '$ctl --data-dir $work/empty background stop >/dev/null 2>&1; $ctl --data-dir $work/full background stop >/dev/null 2>&1; rm -rf "$work"' EXIT
if [ $# -ge 1 ]; then
  cp -a "$1" "$work/full"
else
  go run ./scripts/bench/memory -per-run 10 -steps 1000000 -keep "$work/full"
fi
rm -f "$work/full/ctl-node.json"
mkdir "$work/empty"
$ctl --data-dir "$work/empty" --background off run scripts/examples/hello.star >/dev/null # a first run: the floor is not an empty dir's first start
echo "data dir with the history: $(du -sh "$work/full" | cut -f1); ctl runs ls lists the newest 100 runs"
for dir in empty full; do
  d="--data-dir $work/$dir"
  hyperfine --warmup 2 --runs "$RUNS" --export-markdown "$work/$dir-bg.md" \
    -n "background: ctl run hello.star ($dir)" "$ctl $d run scripts/examples/hello.star" \
    -n "background: ctl runs ls ($dir)" "$ctl $d runs ls" >/dev/null
  hyperfine --runs "$(( (RUNS + 3) / 4 ))" --prepare "$ctl $d background stop" --export-markdown "$work/$dir-cold.md" \
    -n "cold: ctl run hello.star ($dir)" "$ctl $d run scripts/examples/hello.star" >/dev/null
  $ctl $d background stop >/dev/null
  hyperfine --warmup 2 --runs "$RUNS" --export-markdown "$work/$dir-off.md" \
    -n "in-process: ctl run hello.star ($dir)" "$ctl $d --background off run scripts/examples/hello.star" \
    -n "in-process: ctl runs ls ($dir)" "$ctl $d --background off runs ls" >/dev/null
done
head -n 2 "$work/empty-bg.md"
for f in empty-bg full-bg empty-cold full-cold empty-off full-off; do tail -n +3 "$work/$f.md"; done

#!/usr/bin/env bash
# The embedded ctl at a large history: end-to-end time of whole `ctl`
# processes (start the embedded node on the data dir, do the command, stop)
# on a data dir holding DATA (by default 1,000,000 steps in 100,000 runs,
# made by scripts/bench/memory), beside the same commands on an empty data
# dir in the same sitting (the floor: what a ctl process costs with no
# history). Uses hyperfine (apt-get install hyperfine).
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
trap 'rm -rf "$work"' EXIT
go build -o "$work/ctl" ./cmd/ctl
if [ $# -ge 1 ]; then
  cp -a "$1" "$work/full"
else
  go run ./scripts/bench/memory -per-run 10 -steps 1000000 -keep "$work/full"
fi
mkdir "$work/empty"
"$work/ctl" --data-dir "$work/empty" run scripts/examples/hello.star >/dev/null # a first run: the floor is not an empty dir's first start
echo "data dir with the history: $(du -sh "$work/full" | cut -f1); ctl runs ls lists the newest 100 runs"
for dir in empty full; do
  hyperfine --warmup 2 --runs "$RUNS" --export-markdown "$work/$dir.md" \
    -n "ctl run hello.star ($dir)" "$work/ctl --data-dir $work/$dir run scripts/examples/hello.star" \
    -n "ctl runs ls ($dir)" "$work/ctl --data-dir $work/$dir runs ls" >/dev/null
  tail -n +3 "$work/$dir.md"
done

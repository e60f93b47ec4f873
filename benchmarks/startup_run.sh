#!/bin/bash
# Start-up of a whole run: `populace run examples/digits_mlp.py --steps 1` (16 members, one
# epoch each) on the local executor (its worker processes) against inline (this process),
# wall time, the tree at REV ("before") and this working tree ("after"), interleaved,
# N runs each (default 3), medians; the local run's time over inline's is the start-up's cost.
#   nice bash benchmarks/startup_run.sh 7a1d0b3 3
set -e
REV=${1:?usage: benchmarks/startup_run.sh REV [N]}
N=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
git -C "$ROOT" archive "$REV" src | tar -x -C "$TMP"
declare -A SRC=([before]=$TMP/src [after]=$ROOT/src)
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cd "$TMP"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$N"); do for v in before after; do for executor in local inline; do
  rm -rf run.db run.checkpoints
  /usr/bin/time -f "$v $executor %e" env PYTHONPATH="${SRC[$v]}" "$PY" -m populace.cli run \
    "$ROOT/examples/digits_mlp.py" --store run.db --steps 1 --executor "$executor" --quiet \
    > /dev/null 2> err || { cat err; exit 1; }
  tail -1 err >> times
done; done; done
for v in before after; do
  local=$(awk -v v="$v" '$1 == v && $2 == "local" {print $3}' times | med)
  inline=$(awk -v v="$v" '$1 == v && $2 == "inline" {print $3}' times | med)
  echo "$v: local $local s, inline $inline s, local / inline $(echo "scale=2; $local / $inline" | bc)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

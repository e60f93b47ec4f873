#!/bin/bash
# Start-up of `import populace`, a spawned worker's imports and `populace --help`: the tree at
# REV ("before") against this working tree ("after"), interleaved, 9 runs each, medians.
#   bash benchmarks/startup.sh a9bd961
set -e
REV=${1:?usage: benchmarks/startup.sh REV}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
git -C "$ROOT" archive "$REV" src | tar -x -C "$TMP"
declare -A SRC=([before]=$TMP/src [after]=$ROOT/src)
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cd "$TMP"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 9); do for v in before after; do
  export PYTHONPATH=${SRC[$v]}
  $PY -X importtime -c "import populace" 2>&1 | awk -F'|' -v v="$v" '$3 ~ / populace$/ {print v, "imp", $2}' >> times
  /usr/bin/time -f "$v wrk %e %M" $PY -c "from populace import Float, Trainable; import populace.executors.local" 2>> times
  /usr/bin/time -f "$v help %e" $PY -c "import sys; from populace.cli import main; sys.argv = ['populace', '--help']; main()" > /dev/null 2>> times
done; done
for v in before after; do
  echo "$v: import populace $(awk -v v="$v" '$1 == v && $2 == "imp" {print $3}' times | med) us cumulative;" \
       "worker imports $(awk -v v="$v" '$1 == v && $2 == "wrk" {print $3}' times | med) s wall," \
       "max RSS $(awk -v v="$v" '$1 == v && $2 == "wrk" {print $4}' times | med) kB;" \
       "populace --help $(awk -v v="$v" '$1 == v && $2 == "help" {print $3}' times | med) s wall"
  PYTHONPATH=${SRC[$v]} $PY -c "
import sys
from populace import Float, Trainable; import populace.executors.local
print('  the worker imports', len(sys.modules), 'modules; rich:', 'rich' in sys.modules)
import populace.api, populace.cli
print('  with populace.api and populace.cli, of the optional frameworks:',
      [m for m in ('torch', 'tensorboardX', 'tensorboard', 'mlflow', 'lightning', 'transformers')
       if m in sys.modules] or 'none')"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

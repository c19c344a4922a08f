#!/usr/bin/env bash
# bench-launch.sh - launch overhead of `rdmatrain -np N` against Open MPI's `mpirun -np N`, both
# starting a trivial program (/bin/true), and rdmatrain's time from start to exit of a program
# that creates the world communicator and runs one allreduce (tests/integration/
# rdt_allreduce_prog), for N = 1, 4, 8 local ranks. Median of RUNS runs (default 15) each.
#
#   tools/bench-launch.sh [BUILD_DIR]      (default build/; needs rdmatrain_cli and the tests)
#
# Wall-clock per run from this shell (date +%s%N around the command), in microseconds. The
# machine is shared and noisy: compare the ratio in one run. Needs mpirun (openmpi-bin).
set -euo pipefail

BUILD=${1:-build}
RUNS=${RUNS:-15}
L=$BUILD/trainer/rdmatrain
P=$BUILD/tests/rdt_allreduce_prog
for f in "$L" "$P"; do
    [[ -x $f ]] || { echo "bench-launch.sh: $f not built" >&2; exit 2; }
done
command -v mpirun >/dev/null || { echo "bench-launch.sh: mpirun missing (openmpi-bin)" >&2; exit 2; }

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
us() { # run "$@" once, print its wall time in us
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s%N)
    echo $(((e - s) / 1000))
}
times() { local i; for ((i = 0; i < RUNS; i++)); do us "$@"; done | median; }

echo "# bench-launch.sh $(date -Is), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs"
printf '%4s %16s %16s %8s %22s\n' np "rdmatrain us" "mpirun us" ratio "rdmatrain+allreduce us"
for n in 1 4 8; do
    a=$(times "$L" -np "$n" --oversubscribe -- /bin/true)
    b=$(times mpirun --allow-run-as-root --oversubscribe -np "$n" /bin/true)
    c=$(times "$L" -np "$n" --oversubscribe -- "$P")
    printf '%4d %16d %16d %8s %22d\n' "$n" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", b / a }')" "$c"
done

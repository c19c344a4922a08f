#!/usr/bin/env bash
# bench-peers.sh - rdmatrain's allreduce against Open MPI's MPI_Allreduce, back to back on this
# machine, over loopback TCP (WIRE=tcp, the default) or shared memory (WIRE=shm).
#
#   tools/bench-peers.sh            (about 2-3 minutes with the defaults, as root)
#
# For ROUNDS rounds (default 3), and within each round for every rank count of NPS ("2 4"):
#   rdt_bench -n N -c allreduce -d float32 -o sum -b MINB -e MAXB -T TARGET_S
#   mpirun --oversubscribe --allow-run-as-root --mca pml ob1 --mca btl tcp,self \
#          --mca btl_tcp_if_include lo -np N mpi_allreduce_bench -b MINB -e MAXB -T TARGET_S
# with RDT_TRANSPORT=tcp for rdt_bench; WIRE=shm uses RDT_TRANSPORT=shm and Open MPI's
# `--mca btl vader,self` instead.
# The two programs measure the same way (exact check, warmup, -T seconds in 5 batches each
# after a barrier, per-rank mean averaged across ranks, median batch); the MPI one is
# tools/peers/mpi_allreduce_bench.c, carried here so that nothing outside the repository is read.
# The machine is shared and noisy, hence the interleaving and the per-size median over rounds.
#
# Prints, per rank count, one table: size, rdmatrain busbw, Open MPI busbw, their ratio
# (> 1: rdmatrain faster), out-of-place and in-place, then the smallest size's latencies.
# WIRE=shm also runs rdt_bench -M 1 (buffers from rdt_mem_alloc, so the large sizes run as
# direct collectives: the "rdtM" columns, unless MAPPED=0), and measures single-thread memcpy of
# MAXB bytes once per round (tools/memcpy_bw.c, median of 11 copies) and prints the median, with
# every library's busbw at MAXB as a share of it.
# busbw = size / time * 2(n-1)/n, from the median (STAT=best: the minimum) over rounds of each
# size's time.
# Exit status 1 if a run failed or reported wrong elements.
#
# Knobs (environment):
#   WIRE (tcp or shm), MAPPED (1: with WIRE=shm, also rdt_bench -M 1), THP (0; 1: both
#   programs madvise(MADV_HUGEPAGE) their buffers, -P 1), ROUNDS (3), NPS ("2 4"), MINB (8), MAXB (64M), TARGET_S (0.2 s per size and mode),
#   RUN_TIMEOUT (600 s per run), VERBOSE=1 (print every raw table),
#   STAT           median (default) or best: the statistic over rounds of each size's time
#                  (and of memcpy's bandwidth). best: the fastest round, each program's own;
#                  on this machine a process's large buffers are sometimes 2-4x slower for its
#                  first seconds (both libraries alike, freshly allocated memory), which a
#                  median over few rounds does not always outvote.
#   RAW_DIR        summarise the raw tables a KEEP_DIR run kept there, running nothing (give
#                  the same ROUNDS and NPS, and any STAT)
#   SPANS          size ranges run one after the other within a round, each by every program
#                  before the next range, e.g. "8:4K 8K:512K 1M:64M" (default: MINB:MAXB, one
#                  run per program and round). This machine has slow phases of tens of seconds
#                  (everything 2-4x slower, Open MPI and memcpy alike); finer interleaving
#                  puts the programs compared at one size in the same phase more often.
#   RDT_BENCH      an rdt_bench to use; default: build it with CMake into BUILD_DIR
#   BUILD_DIR      (default /tmp/rdt-bench-peers-build)
#   KEEP_DIR       copy the raw tables there
#   MPI_EXTRA      extra mpirun arguments, e.g. "--bind-to none" (Open MPI binds 2 ranks one
#                  per core and leaves 4 ranks on 2 cores unbound; rdt_bench binds nothing)
#   RDT_*          exported library knobs reach rdt_bench's ranks unchanged
# Installs openmpi-bin and libopenmpi-dev with apt-get if they are missing (needs root).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${ROUNDS:-3}
NPS=${NPS:-"2 4"}
MINB=${MINB:-8}
MAXB=${MAXB:-64M}
TARGET_S=${TARGET_S:-0.2}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
VERBOSE=${VERBOSE:-0}
MAPPED=${MAPPED:-1}
THP=${THP:-0}
WIRE=${WIRE:-tcp}
SPANS=${SPANS:-"$MINB:$MAXB"}
STAT=${STAT:-median}
case $STAT in
median | best) ;;
*)
    echo "bench-peers.sh: STAT=$STAT: expected median or best" >&2
    exit 2
    ;;
esac
case $WIRE in
tcp) BTL=(--mca btl "tcp,self" --mca btl_tcp_if_include lo) ;;
shm) BTL=(--mca btl "vader,self") ;;
*)
    echo "bench-peers.sh: WIRE=$WIRE: expected tcp or shm" >&2
    exit 2
    ;;
esac
BUILD_DIR=${BUILD_DIR:-/tmp/rdt-bench-peers-build}
KEEP_DIR=${KEEP_DIR:-}
read -r -a MPI_EXTRA_ARGS <<<"${MPI_EXTRA:-}"
WORK=$(mktemp -d /tmp/bench-peers.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------------------- packages
missing=()
for p in openmpi-bin libopenmpi-dev; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "bench-peers.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

# The benchmarks run without OPENBLAS_CORETYPE if the caller's environment sets it.
BENCH_ENV=(env)
if [[ -n "${OPENBLAS_CORETYPE+set}" ]]; then
    BENCH_ENV=(env -u OPENBLAS_CORETYPE)
fi

# ------------------------------------------------------------------------------- build
MPI_BENCH="$WORK/mpi_allreduce_bench"
mpicc -O2 -Wall -o "$MPI_BENCH" "$HERE/peers/mpi_allreduce_bench.c"
MEMCPY_BW="$WORK/memcpy_bw"
cc -O2 -Wall -o "$MEMCPY_BW" "$HERE/memcpy_bw.c"
MAXB_BYTES=$(numfmt --from=iec "$MAXB")

rdt_ok=1
failed=0 # exit status
if [[ -z "${RDT_BENCH:-}" ]]; then
    RDT_BENCH="$BUILD_DIR/tools/rdt_bench"
    echo "building rdt_bench in $BUILD_DIR ..."
    if ! { cmake -S "$SRC_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
            -DRDT_BUILD_TESTS=OFF >"$WORK/build.log" 2>&1 &&
        cmake --build "$BUILD_DIR" -j"$(nproc)" --target rdt_bench >>"$WORK/build.log" 2>&1; }; then
        echo "!!! rdt_bench did not build; Open MPI only. Last lines of the build:"
        tail -n 15 "$WORK/build.log" | sed 's/^/!!!   /'
        rdt_ok=0
        failed=1
    fi
elif [[ ! -x "$RDT_BENCH" ]]; then
    echo "!!! RDT_BENCH=$RDT_BENCH is not executable; Open MPI only"
    rdt_ok=0
    failed=1
fi

MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca pml ob1 "${BTL[@]}" "${MPI_EXTRA_ARGS[@]}")
BENCH_ENV+=("RDT_TRANSPORT=$WIRE") # the same wire as Open MPI's

# ------------------------------------------------------------------------------- header
echo "# bench-peers.sh  $(date -Is)"
echo "# host: $(uname -srm), $(nproc) cpus, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p')"
echo "# $(mpirun --version 2>/dev/null | head -1); rdt_bench: $RDT_BENCH$( ((rdt_ok)) || echo ' (unavailable)')"
echo "# rounds $ROUNDS, ranks $NPS, sizes $MINB..$MAXB (spans, each run by every program in turn: $SPANS), ~$TARGET_S s per size and mode"
echo "# wire: $WIRE; rdt: RDT_TRANSPORT=$WIRE rdt_bench -n N -c allreduce -d float32 -o sum -b $MINB -e $MAXB -T $TARGET_S"
echo "# mpi: ${MPIRUN[*]} -np N mpi_allreduce_bench -b $MINB -e $MAXB -T $TARGET_S"
env | grep '^RDT_' | sed 's/^/# env: /' || true
echo "# buffers: $( ((THP)) && echo 'madvise(MADV_HUGEPAGE) (-P 1 in both)' || echo "the system's default pages ($(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?'))")"
echo "# load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# ------------------------------------------------------------------------------- runs
run_one() { # tool np round minb maxb: rows appended to the round's raw table
    local tool=$1 np=$2 round=$3 lo=$4 hi=$5 out="$WORK/raw-$1-$2-$3.txt" t0 rc=0
    t0=$(date +%s)
    if [[ $tool == rdt* ]]; then
        timeout "$RUN_TIMEOUT" "${BENCH_ENV[@]}" "$RDT_BENCH" -n "$np" -c allreduce -d float32 \
            -o sum -b "$lo" -e "$hi" -T "$TARGET_S" -t "$RUN_TIMEOUT" \
            -M "$([[ $tool == rdtm ]] && echo 1 || echo 0)" -P "$THP" >>"$out" 2>&1 || rc=$?
    else
        timeout "$RUN_TIMEOUT" "${BENCH_ENV[@]}" "${MPIRUN[@]}" -np "$np" "$MPI_BENCH" \
            -b "$lo" -e "$hi" -T "$TARGET_S" -P "$THP" >>"$out" 2>&1 || rc=$?
    fi
    printf "round %s/%s  %-9s %s ranks %s..%s: %s (%d s, load %s)\n" "$round" "$ROUNDS" \
        "$(case $tool in rdt) echo rdmatrain ;; rdtm) echo 'rdmatrain -M 1' ;; *) echo 'Open MPI' ;; esac)" "$np" "$lo" "$hi" \
        "$( ((rc == 0)) && echo ok || echo "FAILED, exit $rc")" $(($(date +%s) - t0)) \
        "$(cut -d' ' -f1 /proc/loadavg)"
    if ((rc != 0)); then
        failed=1
        grep -v '^ ' "$out" | tail -n 5 | sed 's/^/    /'
    fi
    if [[ $VERBOSE == 1 ]]; then
        sed 's/^/    /' "$out"
    fi
}

RAW_DIR=${RAW_DIR:-}
if [[ -n "$RAW_DIR" ]]; then
    cp "$RAW_DIR"/raw-*.txt "$WORK"/
    echo "# summarising the raw tables of $RAW_DIR (nothing run)"
fi
for round in $(seq "$ROUNDS"); do
    [[ -n "$RAW_DIR" ]] && break
    for np in $NPS; do
        for span in $SPANS; do
            lo=${span%%:*}
            hi=${span##*:}
            ((rdt_ok)) && run_one rdt "$np" "$round" "$lo" "$hi"
            ((rdt_ok)) && [[ $WIRE == shm && $MAPPED == 1 ]] && run_one rdtm "$np" "$round" "$lo" "$hi"
            run_one mpi "$np" "$round" "$lo" "$hi"
        done
    done
    if [[ $WIRE == shm ]]; then
        "${BENCH_ENV[@]}" "$MEMCPY_BW" "$MAXB_BYTES" 11 >"$WORK/raw-memcpy-$round.txt" || failed=1
        printf "round %s/%s  memcpy of %s: %s GB/s\n" "$round" "$ROUNDS" "$MAXB" \
            "$(awk '{print $3}' "$WORK/raw-memcpy-$round.txt")"
    fi
done
MEMCPY_GBS=-1
if [[ $WIRE == shm ]]; then
    MEMCPY_GBS=$(cat "$WORK"/raw-memcpy-*.txt | awk '{print $3}' | sort -g |
        awk -v stat="$STAT" '{a[NR] = $1} END {print !NR ? -1 : stat == "best" ? a[NR] : (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}')
fi
echo
[[ -n "$KEEP_DIR" ]] && mkdir -p "$KEEP_DIR" && cp "$WORK"/raw-*.txt "$KEEP_DIR"/

# ------------------------------------------------------------------------------- tables
# rdt_bench rows: size count type redop root | time algbw busbw #wrong | time algbw busbw #wrong
# mpi rows:       size count | time algbw busbw #wrong | time algbw busbw #wrong | iters
summary() { # np
    local np=$1
    shopt -s nullglob
    local files=("$WORK"/raw-rdt-"$np"-*.txt "$WORK"/raw-rdtm-"$np"-*.txt "$WORK"/raw-mpi-"$np"-*.txt)
    shopt -u nullglob
    echo "=== allreduce float32 sum, $np ranks, loopback: $([[ $STAT == best ]] && echo "best of" || echo "median over") $ROUNDS rounds ==="
    if ((${#files[@]} == 0)); then
        echo "(no data)"
        echo
        return
    fi
    awk -v np="$np" -v memcpy_gbs="$MEMCPY_GBS" -v stat="$STAT" '
        function median(s,   a, n, i, j, t) {
            n = split(s, a, " ")
            if (n == 0) return -1
            for (i = 2; i <= n; i++) {
                t = a[i] + 0
                for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
                a[j + 1] = t
            }
            if (stat == "best") return a[1] # times: the fastest round
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        function bw(size, t) { return t > 0 ? size / t / 1e3 * 2 * (np - 1) / np : -1 }
        function fmt(x) { return x < 0 ? sprintf("%9s", "-") : sprintf("%9.3f", x) }
        function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%7.2f", a / b) : sprintf("%7s", "-") }
        FNR == 1 { tool = (FILENAME ~ /raw-rdt-/) ? "rdt" : (FILENAME ~ /raw-rdtm-/) ? "rdtm" : "mpi"; if (tool == "rdtm") mapped = 1 }
        /^#/ || $1 !~ /^[0-9]+$/ { next }
        tool ~ /^rdt/ && NF >= 13 && $3 == "float32" && $4 == "sum" {
            k = $1; seen[k] = 1; t[k, tool, 0] = t[k, tool, 0] " " $6; t[k, tool, 1] = t[k, tool, 1] " " $10
            if ($9 ~ /^[0-9]+$/) wrong["rdt"] += $9
            if ($13 ~ /^[0-9]+$/) wrong["rdt"] += $13
            next
        }
        tool == "mpi" && NF >= 10 {
            k = $1; seen[k] = 1; t[k, "mpi", 0] = t[k, "mpi", 0] " " $3; t[k, "mpi", 1] = t[k, "mpi", 1] " " $7
            wrong["mpi"] += $6 + $10
        }
        END {
            n = 0
            for (k in seen) sizes[++n] = k + 0
            for (i = 2; i <= n; i++) { x = sizes[i]; for (j = i - 1; j >= 1 && sizes[j] > x; j--) sizes[j + 1] = sizes[j]; sizes[j + 1] = x }
            printf "# %11s %9s %9s %7s %9s %9s %7s", "size", "rdt oop", "mpi oop", "ratio", "rdt ip", "mpi ip", "ratio"
            if (mapped) printf " %9s %7s %9s %7s", "rdtM oop", "ratio", "rdtM ip", "ratio"
            printf "\n# %11s %9s %9s %7s %9s %9s %7s", "(B)", "(GB/s)", "(GB/s)", "rdt/mpi", "(GB/s)", "(GB/s)", "rdt/mpi"
            if (mapped) printf " %9s %7s %9s %7s", "(GB/s)", "M/mpi", "(GB/s)", "M/mpi"
            printf "\n"
            for (i = 1; i <= n; i++) {
                k = sizes[i]; line = sprintf("  %11d", k)
                for (m = 0; m < 2; m++) {
                    r = bw(k, median(t[k, "rdt", m])); p = bw(k, median(t[k, "mpi", m]))
                    line = line " " fmt(r) " " fmt(p) " " ratio(r, p)
                }
                for (m = 0; mapped && m < 2; m++) {
                    r = bw(k, median(t[k, "rdtm", m])); p = bw(k, median(t[k, "mpi", m]))
                    line = line " " fmt(r) " " ratio(r, p)
                }
                print line
            }
            if (n > 0) {
                k = sizes[1]
                for (m = 0; m < 2; m++) {
                    lr[m] = median(t[k, "rdt", m]); lm[m] = median(t[k, "mpi", m])
                    ls[m] = sprintf("rdmatrain %s us, Open MPI %s us", lr[m] < 0 ? "-" : sprintf("%.2f", lr[m]), lm[m] < 0 ? "-" : sprintf("%.2f", lm[m]))
                }
                printf "# %d-byte latency: out-of-place %s; in-place %s\n", k, ls[0], ls[1]
                k = sizes[n]
                if (memcpy_gbs > 0)
                    printf "# single-thread memcpy of %d B: %.2f GB/s; busbw at %d B as a share of it: rdmatrain %.0f%% (in place %.0f%%), Open MPI %.0f%% (in place %.0f%%)\n", k, memcpy_gbs, k, 100 * bw(k, median(t[k, "rdt", 0])) / memcpy_gbs, 100 * bw(k, median(t[k, "rdt", 1])) / memcpy_gbs, 100 * bw(k, median(t[k, "mpi", 0])) / memcpy_gbs, 100 * bw(k, median(t[k, "mpi", 1])) / memcpy_gbs
                if (memcpy_gbs > 0 && mapped)
                    printf "# rdmatrain -M 1 (rdt_mem_alloc buffers, direct): %.0f%% (in place %.0f%%) of memcpy at %d B\n", 100 * bw(k, median(t[k, "rdtm", 0])) / memcpy_gbs, 100 * bw(k, median(t[k, "rdtm", 1])) / memcpy_gbs, k
                if (mapped) {
                    k = sizes[1]
                    printf "# rdmatrain -M 1 %d-byte latency: out-of-place %.2f us, in-place %.2f us\n", k, median(t[k, "rdtm", 0]), median(t[k, "rdtm", 1])
                }
            }
            printf "# #wrong over all rounds: rdmatrain %d, Open MPI %d\n", wrong["rdt"], wrong["mpi"]
            if (wrong["rdt"] + wrong["mpi"] > 0) exit 3
        }' "${files[@]}" || failed=1
    echo
}

for np in $NPS; do
    summary "$np"
done
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)   finished $(date -Is)"
exit "$failed"

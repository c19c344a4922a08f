#!/usr/bin/env bash
# bench-hier.sh - hierarchical allreduce against the flat ring (or any two allreduce algorithms,
# ALGOS), 2 hosts x 2 ranks, over TCP between hosts that are network namespaces of this machine
# (shared memory inside each).
#
#   tools/bench-hier.sh                      (as root; about 2-5 minutes with the defaults)
#   RATE=1gbit tools/bench-hier.sh           (each host's link shaped to 1 Gb/s, see below)
#
# Creates three namespaces of its own (rdtbh<pid>-h0, -h1: eth0 198.51.100.11/.12 on veths to a
# bridge in rdtbh<pid>-sw), nothing in the root namespace; they are deleted on every exit path
# (trap). The launcher runs in the bridge's namespace and starts the ranks through an --rsh agent
# that enters each host's namespace with `ip netns exec` and sets RDT_HOSTNAME=<address>, so the
# engine sees two hosts: shm inside each, tcp between (RDT_TRANSPORT=auto). Per round, both
# algorithms, in alternating order:
#   rdmatrain -H h0:2,h1:2 --rsh AGENT -x RDT_ALGO=allreduce:{hier,ring} -- \
#       rdt_bench -c allreduce -d float32 -o sum -b MINB -e MAXB -w WARMUP -T TARGET_S
# (rdt_bench checks every size before timing: -k 1). The machine is shared and noisy, hence the
# interleaving and the per-size median over rounds.
#
# Prints one table: size, busbw of hier and ring (GB/s, nccl-tests' busbw, 2(p-1)/p x size /
# time, p = 4) and the ratio ring time / hier time (> 1: hier faster), out-of-place and in-place.
# Exit status 1 if a run failed or reported wrong elements.
#
# Knobs (environment):
#   ROUNDS (3), MINB (64K), MAXB (64M), TARGET_S (0.2), WARMUP (2), RUN_TIMEOUT (900 s per run)
#   ALGOS    the two allreduce algorithms compared ("hier ring"; e.g. "hiertree recdbl" with
#            MINB=8 for small vectors); the table's ratio is second time / first time
#   RATE     if set (e.g. 1gbit), `tc qdisc add dev eth0 root tbf rate RATE burst BURST latency
#            20ms` in each host namespace: a slower link between hosts (veths between namespaces
#            are memory copies, about as fast as shm). BURST (512kb).
#   DELAY    if set (e.g. 100us), netem delay on each host's eth0 instead of/with RATE (netem
#            with rate RATE when both are set). Needs sch_netem: the kernel of our machines
#            lacks it ("Specified qdisc kind is unknown"); tbf (RATE alone) works.
#   RDT_BENCH, RDT_LAUNCHER   binaries to use; default: build them with CMake into BUILD_DIR
#   BUILD_DIR (default /tmp/rdt-bench-hier-build), KEEP_DIR (copy the raw outputs there),
#   VERBOSE=1 (print every raw table)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${ROUNDS:-3}
ALGOS=${ALGOS:-"hier ring"}
ALGO_A=${ALGOS%% *}
ALGO_B=${ALGOS##* }
MINB=${MINB:-64K}
MAXB=${MAXB:-64M}
TARGET_S=${TARGET_S:-0.2}
WARMUP=${WARMUP:-2}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
RATE=${RATE:-}
BURST=${BURST:-512kb}
DELAY=${DELAY:-}
VERBOSE=${VERBOSE:-0}
BUILD_DIR=${BUILD_DIR:-/tmp/rdt-bench-hier-build}
KEEP_DIR=${KEEP_DIR:-}

if [[ $(id -u) -ne 0 ]]; then
    echo "bench-hier.sh: needs root (network namespaces)" >&2
    exit 1
fi
IP=$(command -v ip || true)
if [[ -z $IP ]]; then
    echo "bench-hier.sh: no 'ip' program (Debian package iproute2)" >&2
    exit 1
fi

# ------------------------------------------------------------------------------- namespaces
P=rdtbh$$
SW=$P-sw
HOSTS_NS=("$P-h0" "$P-h1")
ADDRS=(198.51.100.11 198.51.100.12)
WORK=$(mktemp -d /tmp/bench-hier.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    local ns pid
    for ns in "${HOSTS_NS[@]}" "$SW"; do
        [[ -e /run/netns/$ns ]] || continue
        for pid in $("$IP" netns pids "$ns" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
        "$IP" netns del "$ns" 2>/dev/null || echo "bench-hier.sh: cannot delete namespace $ns" >&2
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Namespaces of earlier runs that were SIGKILLed (their pid is gone).
for f in /run/netns/rdtbh*-*; do
    [[ -e $f ]] || continue
    n=${f#/run/netns/rdtbh}
    n=${n%%-*}
    if [[ $n =~ ^[0-9]+$ ]] && ! kill -0 "$n" 2>/dev/null; then
        echo "deleting namespace ${f#/run/netns/} of an earlier run"
        "$IP" netns del "${f#/run/netns/}" || true
    fi
done

"$IP" netns add "$SW"
"$IP" -n "$SW" link add br0 type bridge
"$IP" -n "$SW" link set br0 up
for i in 0 1; do
    ns=${HOSTS_NS[$i]}
    "$IP" netns add "$ns"
    "$IP" link add name eth0 netns "$ns" type veth peer name "p-h$i" netns "$SW"
    "$IP" -n "$SW" link set "p-h$i" master br0
    "$IP" -n "$SW" link set "p-h$i" up
    "$IP" -n "$ns" link set lo up
    "$IP" -n "$ns" addr add "${ADDRS[$i]}/24" dev eth0
    "$IP" -n "$ns" link set eth0 up
    if [[ -n $DELAY ]]; then
        "$IP" netns exec "$ns" tc qdisc add dev eth0 root netem delay "$DELAY" \
            ${RATE:+rate "$RATE"} limit 100000
    elif [[ -n $RATE ]]; then
        "$IP" netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$RATE" burst "$BURST" \
            latency 20ms
    fi
done

AGENT=$WORK/netns-agent
cat >"$AGENT" <<EOF
#!/bin/sh
# AGENT HOST COMMAND: COMMAND in HOST's namespace, in a session of its own, as its own host.
host=\$1; shift
case \$host in
  ${ADDRS[0]}) ns=${HOSTS_NS[0]} ;;
  ${ADDRS[1]}) ns=${HOSTS_NS[1]} ;;
  *) echo "netns-agent: no namespace for host '\$host'" >&2; exit 255 ;;
esac
exec '$IP' netns exec "\$ns" env RDT_HOSTNAME="\$host" setsid -w /bin/sh -c "\$*"
EOF
chmod 755 "$AGENT"

# ------------------------------------------------------------------------------- build
if [[ -z "${RDT_BENCH:-}" || -z "${RDT_LAUNCHER:-}" ]]; then
    RDT_BENCH=$BUILD_DIR/tools/rdt_bench
    RDT_LAUNCHER=$BUILD_DIR/trainer/rdmatrain
    echo "building rdt_bench and rdmatrain in $BUILD_DIR ..."
    if ! { cmake -S "$SRC_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
            -DRDT_BUILD_TESTS=OFF >"$WORK/build.log" 2>&1 &&
        cmake --build "$BUILD_DIR" -j"$(nproc)" --target rdt_bench rdmatrain_cli \
            >>"$WORK/build.log" 2>&1; }; then
        echo "!!! the build failed; last lines:"
        tail -n 15 "$WORK/build.log" | sed 's/^/!!!   /'
        exit 1
    fi
fi

# The benchmarks run without OPENBLAS_CORETYPE if the caller's environment sets it.
BENCH_ENV=(env -u RDT_ALGO -u RDT_TRANSPORT -u RDT_HOSTNAME)
if [[ -n "${OPENBLAS_CORETYPE+set}" ]]; then
    BENCH_ENV+=(-u OPENBLAS_CORETYPE)
fi

# ------------------------------------------------------------------------------- header
echo "# bench-hier.sh  $(date -Is)"
echo "# host: $(uname -srm), $(nproc) cpus, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p')"
echo "# 2 namespaces x 2 ranks (${ADDRS[0]}, ${ADDRS[1]}), RDT_TRANSPORT=auto (shm inside, tcp between)"
echo "# link between hosts: veth + bridge$([[ -n $RATE$DELAY ]] && echo ", shaped on each host's eth0:" \
    "$([[ -n $DELAY ]] && echo "netem delay $DELAY${RATE:+ rate $RATE}" || echo "tbf rate $RATE burst $BURST latency 20ms")")"
echo "# rounds $ROUNDS, sizes $MINB..$MAXB, ~$TARGET_S s per size and mode, warmup $WARMUP"
echo "# run: rdmatrain -H h0:2,h1:2 --rsh AGENT -x RDT_ALGO=allreduce:{$ALGO_A,$ALGO_B} --" \
    "rdt_bench -c allreduce -d float32 -o sum -b $MINB -e $MAXB -w $WARMUP -T $TARGET_S"
env | grep '^RDT_' | grep -v '^RDT_BENCH=\|^RDT_LAUNCHER=' | sed 's/^/# env: /' || true
echo "# load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# ------------------------------------------------------------------------------- runs
printf "%s slots=2\n%s slots=2\n" "${ADDRS[0]}" "${ADDRS[1]}" >"$WORK/hosts.txt"
failed=0
run_one() { # algo round
    local algo=$1 round=$2 out="$WORK/raw-$1-$2.txt" t0 rc=0
    t0=$(date +%s)
    timeout "$RUN_TIMEOUT" "${BENCH_ENV[@]}" "$IP" netns exec "$SW" "$RDT_LAUNCHER" \
        -H "$WORK/hosts.txt" --rsh "$AGENT" --timeout "$RUN_TIMEOUT" \
        -x RDT_TRANSPORT=auto -x "RDT_ALGO=allreduce:$algo" -- \
        "$RDT_BENCH" -c allreduce -d float32 -o sum -b "$MINB" -e "$MAXB" -w "$WARMUP" \
        -T "$TARGET_S" -k 1 >"$out" 2>&1 || rc=$?
    printf "round %s/%s  %-4s: %s (%d s, load %s)\n" "$round" "$ROUNDS" "$algo" \
        "$( ((rc == 0)) && echo ok || echo "FAILED, exit $rc")" $(($(date +%s) - t0)) \
        "$(cut -d' ' -f1 /proc/loadavg)"
    if ((rc != 0)); then
        failed=1
        grep -v '^\[[^]]*\]  ' "$out" | tail -n 8 | sed 's/^/    /'
    fi
    if [[ $VERBOSE == 1 ]]; then
        sed 's/^/    /' "$out"
    fi
}

for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then order="$ALGO_A $ALGO_B"; else order="$ALGO_B $ALGO_A"; fi
    for algo in $order; do
        run_one "$algo" "$round"
    done
done
echo
[[ -n "$KEEP_DIR" ]] && mkdir -p "$KEEP_DIR" && cp "$WORK"/raw-*.txt "$KEEP_DIR"/

# ------------------------------------------------------------------------------- table
# rows (after the launcher's "[host:rank] " prefix): size count type redop root |
#   time algbw busbw #wrong | time algbw busbw #wrong
awk -v A="$ALGO_A" -v B="$ALGO_B" '
    function median(s,   a, n, i, j, t) {
        n = split(s, a, " ")
        if (n == 0) return -1
        for (i = 2; i <= n; i++) {
            t = a[i] + 0
            for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
            a[j + 1] = t
        }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function bw(size, t) { return t > 0 ? size / t / 1e3 * 1.5 : -1 }
    function fmt(x) { return x < 0 ? sprintf("%8s", "-") : sprintf("%8.3f", x) }
    function ratio(r, h) { return (r > 0 && h > 0) ? sprintf("%7.2f", r / h) : sprintf("%7s", "-") }
    FNR == 1 { algo = index(FILENAME, "raw-" A "-") ? A : B }
    {
        sub(/^\[[^]]*\] /, "")
        if ($0 ~ /^#/ || $1 !~ /^[0-9]+$/ || NF < 13 || $3 != "float32") next
        k = $1; seen[k] = 1
        t[k, algo, 0] = t[k, algo, 0] " " $6; t[k, algo, 1] = t[k, algo, 1] " " $10
        n[k, algo]++
        if ($9 ~ /^[0-9]+$/) wrong += $9
        if ($13 ~ /^[0-9]+$/) wrong += $13
    }
    END {
        m = 0
        for (k in seen) sizes[++m] = k + 0
        for (i = 2; i <= m; i++) { x = sizes[i]; for (j = i - 1; j >= 1 && sizes[j] > x; j--) sizes[j + 1] = sizes[j]; sizes[j + 1] = x }
        printf "# %10s %8s %8s %7s %8s %8s %7s %6s\n", "size", A " oop", B " oop", "ratio", A " ip", B " ip", "ratio", "rounds"
        printf "# %10s %8s %8s %7s %8s %8s %7s %6s\n", "(B)", "(GB/s)", "(GB/s)", "B/A", "(GB/s)", "(GB/s)", "B/A", "A/B"
        for (i = 1; i <= m; i++) {
            k = sizes[i]; line = sprintf("  %10d", k)
            for (md = 0; md < 2; md++) {
                h = median(t[k, A, md]); r = median(t[k, B, md])
                line = line " " fmt(bw(k, h)) " " fmt(bw(k, r)) " " ratio(r, h)
            }
            print line sprintf(" %3d/%d", n[k, A], n[k, B])
        }
        print "# busbw = size / time x 2(p-1)/p, p = 4, from the median time over rounds;"
        print "# ratio B/A = " B " time / " A " time (> 1: " A " faster)"
        printf "# #wrong over all runs: %d\n", wrong
        if (wrong > 0) exit 3
    }' "$WORK"/raw-*.txt || failed=1
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)   finished $(date -Is)"
exit "$failed"

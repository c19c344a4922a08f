#!/usr/bin/env bash
# softroce-bench.sh - raw RDMA figures of SoftRoCE: perftest's ib_write_lat and ib_write_bw
# over rxe0, server and client on the same device (rxe's loopback path), through softroce.sh
# (in a VM on these machines).
#
#   tools/softroce-bench.sh [--mtu 1024|4096|all] [--sizes "8 1048576"]
#
# Prints one table per MTU: test, message size, iterations, and the figures perftest reports
# (latency: typical, average and 99th percentile in us; bandwidth: average Gb/s and Mmsg/s).
# Under emulation (TCG) the absolute numbers mean little: compare ratios measured in one run.
# Knobs (environment): BW_BYTES (bytes moved per bandwidth run, default 256 MiB, between 100
# and 5000 iterations), LAT_ITERS (1000 up to 64 KiB, 100 above), and softroce.sh's RDT_VM_*.
# Exit status 1 if a run failed. The verbs issue extends this with the project's own benchmark.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---------------------------------------------------------------- inside: rxe0 is up
if [[ ${1:-} == --inside ]]; then
    shift
    dev=${RDT_SOFTROCE_IBDEV:-rxe0}
    addr=${RDT_SOFTROCE_ADDR:-192.0.2.1}
    # GID 1 is the IPv4-mapped address on rxe (GID 0 is link-local); -F: the VM's CPU frequency
    # readings differ between cores, which perftest would otherwise refuse.
    common=(-d "$dev" -i 1 -x 1 -F)
    port=18515
    fail=0
    mtu=$(ibv_devinfo -d "$dev" | awk '/active_mtu/ { print $2; exit }')

    wait_listen() {
        local i
        for ((i = 0; i < 200; i++)); do
            ss -Hltn "sport = :$1" | grep -q . && return 0
            sleep 0.05
        done
        return 1
    }
    # run_pair PROGRAM ARGS...: server in the background, client against it; prints the
    # client's result row (the line of numbers under perftest's header).
    run_pair() {
        local prog=$1 srv rc=0 out
        shift
        port=$((port + 1))
        "$prog" "${common[@]}" -p "$port" "$@" >/dev/null 2>&1 &
        srv=$!
        if ! wait_listen "$port"; then
            kill "$srv" 2>/dev/null
            wait "$srv" 2>/dev/null || true
            echo "$prog $*: server did not start" >&2
            return 1
        fi
        out=$(timeout 300 "$prog" "${common[@]}" -p "$port" "$@" "$addr" 2>&1) || rc=$?
        if ! wait "$srv"; then
            local src=$?
            ((rc)) || rc=$src
        fi
        if ((rc)); then
            printf '%s %s: failed (%d)\n%s\n' "$prog" "$*" "$rc" "$out" >&2
            return 1
        fi
        awk '/^ *[0-9]+ +[0-9]+ +[0-9.]+/ { print; exit }' <<<"$out"
    }

    printf '\nactive_mtu %s on %s\n' "$mtu" "$dev"
    printf '%-13s %9s %6s  %s\n' test bytes iters figures
    for size in "$@"; do
        iters=${LAT_ITERS:-$((size <= 65536 ? 1000 : 100))}
        if row=$(run_pair ib_write_lat -s "$size" -n "$iters"); then
            # bytes iters t_min t_max t_typical t_avg t_stdev p99 p99.9
            read -r -a f <<<"$row"
            printf '%-13s %9s %6s  typical %s us, avg %s us, p99 %s us\n' \
                ib_write_lat "${f[0]}" "${f[1]}" "${f[4]}" "${f[5]}" "${f[7]}"
        else
            fail=1
        fi
        iters=$((${BW_BYTES:-268435456} / size))
        ((iters < 100)) && iters=100
        ((iters > 5000)) && iters=5000
        if row=$(run_pair ib_write_bw -s "$size" -n "$iters" --report_gbits); then
            # bytes iters bw_peak bw_avg msg_rate
            read -r -a f <<<"$row"
            printf '%-13s %9s %6s  avg %s Gb/s, %s Mmsg/s\n' \
                ib_write_bw "${f[0]}" "${f[1]}" "${f[3]}" "${f[4]}"
        else
            fail=1
        fi
    done
    exit "$fail"
fi

# ---------------------------------------------------------------- outside
mtus=(1024 4096)
sizes=(8 1048576)
while (($#)); do
    case $1 in
    --mtu)
        case ${2:-} in
        1024 | 4096) mtus=("$2") ;;
        all) mtus=(1024 4096) ;;
        *) echo "softroce-bench.sh: --mtu takes 1024, 4096 or all" >&2 && exit 2 ;;
        esac
        shift 2
        ;;
    --sizes)
        read -r -a sizes <<<"${2:-}"
        shift 2
        ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) echo "softroce-bench.sh: unknown argument '$1' (see --help)" >&2 && exit 2 ;;
    esac
done
for s in "${sizes[@]}"; do
    [[ $s =~ ^[1-9][0-9]*$ ]] || { echo "softroce-bench.sh: sizes are byte counts, not '$s'" >&2 && exit 2; }
done

cd "$HERE"
# The VM replaces /tmp and /run: a checkout there must be shared explicitly.
ro=()
case $HERE/ in /tmp/* | /run/*) ro=(--ro "$HERE") ;; esac
rc=0
for mtu in "${mtus[@]}"; do
    "$HERE/softroce.sh" --mtu "$mtu" "${ro[@]}" -- bash "$HERE/softroce-bench.sh" --inside "${sizes[@]}" || rc=1
done
exit "$rc"

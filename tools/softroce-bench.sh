#!/usr/bin/env bash
# softroce-bench.sh - SoftRoCE figures side by side, in one VM run per MTU (through softroce.sh;
# in a VM on these machines): raw RDMA (perftest's ib_write_lat and ib_write_bw over rxe0,
# server and client on the same device: rxe's loopback path), then the project's allreduce
# (rdt_bench -n 2) over the verbs transport and over TCP, and the ratios between them.
#
#   tools/softroce-bench.sh [--build DIR] [--mtu 1024|4096|all] [--lat-sizes "8"]
#                           [--bw-sizes "1048576 4194304"]
#                           [--rdt-sizes "8 65536 1048576 4194304 16777216"]
#                           [--rndv "64k 0"] [--base DIR] [--rounds N]
#
#   --build DIR   build tree holding tools/rdt_bench (default: the repository's build/), shared
#                 into the VM read-write
#   --mtu         active MTU of rxe0, one VM run each (default all: 1024 and 4096)
#   --lat-sizes, --bw-sizes   message sizes of ib_write_lat and ib_write_bw
#   --rdt-sizes   allreduce sizes of rdt_bench; "" skips rdt_bench (perftest only)
#   --rndv        RDT_IB_RNDV values to measure verbs with too, in the same VM run, besides the
#                 caller's setting (default: none); each adds a row group "verbs RDT_IB_RNDV=X"
#   --base DIR    another build tree (an older commit, say) whose rdt_bench runs over verbs too,
#                 in the same VM run, each size right after --build's: a row group "verbs, base
#                 build" with its ratios to perftest and "/ verbs", the base build's time over
#                 --build's (above 1: --build is faster)
#   --rounds N    repeat every measurement N times in the same VM (default 1), each round's
#                 report printed as it ends, then a summary: per round, the 8-byte allreduce
#                 against ib_write_lat and against the raw exchange, the raw exchange against
#                 ib_write_lat, and busbw against ib_write_bw and (BW_BIDIR=1) against one
#                 direction of ib_write_bw -b; and the median of each ratio over the rounds.
#                 Under emulation a round's figures can move 2x from one minute to the next:
#                 ratios taken within a round, and their medians, are what compare.
#
# Prints, per MTU: perftest's figures (latency: typical, average and 99th percentile in us, one
# way, i.e. half a round trip, as perftest reports it; bandwidth: average Gb/s and Mmsg/s), then
# rdt_bench's allreduce (float32 sum, 2 ranks, out of place, nccl-tests figures: time per call
# in us, busbw in GB/s) per size with verbs and tcp side by side and their time ratio, then:
#   rdt allreduce time / ib_write_lat typical, at each size measured by both (8 B), and the same
#     against ib_write_lat's average (rdt_bench's time is a mean per batch, the median of the
#     batches: spikes of the emulator weigh in it as in perftest's average, not its typical);
#   rdt allreduce time / the raw exchange at each lat size up to 4 KiB (tools/verbs_xchg: two
#     processes write BYTES to each other at once and wait for both, the median of 9 batches of
#     XCHG_ITERS (500), as a 2-rank allreduce's one exchange does with nothing around it), and
#     the raw exchange / ib_write_lat typical: what the device charges for an exchange;
#   rdt busbw (verbs) / ib_write_bw, at each rdt size from the largest ib_write_bw size up
#     (4 and 16 MiB), against the best ib_write_bw average of the run; units converted: busbw
#     GB/s (1e9 bytes/s) x 8 = Gb/s, the decimal gigabits perftest's --report_gbits prints;
#   verbs / tcp allreduce time, per size (below 1: verbs is faster).
# With 2 ranks an allreduce's busbw equals its algbw (size / time), so the bandwidth ratio says
# which share of a raw RDMA write stream the engine delivers; the latency ratio, how many one-way
# hops an 8-byte allreduce costs. Under emulation (TCG) absolute numbers mean little: compare
# ratios measured in one run.
# Knobs (environment): XCHG_ITERS, BW_BYTES (bytes moved per ib_write_bw run, default 256 MiB, between 100
# and 5000 iterations), LAT_ITERS (1000 up to 64 KiB, 100 above), BENCH_ITERS (rdt_bench -i,
# timed calls per size; default: rdt_bench's own 0.2 s per batch), BENCH_WARMUP (rdt_bench -w,
# default 5), BW_BIDIR=1 (ib_write_bw -b too: both directions at once, the traffic of a 2-rank
# allreduce), and softroce.sh's RDT_VM_*.
# Exit status 1 if a run failed (rdt_bench's result check included), 2 on a usage error.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=softroce-bench.sh

usage_error() {
    echo "$PROG: $*" >&2
    exit 2
}

inside=0
build=$HERE/../build
mtus=(1024 4096)
lat_sizes=(8)
bw_sizes=(1048576 4194304)
rdt_sizes=(8 65536 1048576 4194304 16777216)
rndvs=()
base=
rounds=1
while (($#)); do
    case $1 in
    --inside) # internal: the part that runs where rxe0 is up
        inside=1
        shift
        continue
        ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    esac
    (($# >= 2)) || usage_error "$1 takes a value (see --help)"
    case $1 in
    --build) build=$2 ;;
    --mtu)
        case $2 in
        1024 | 4096) mtus=("$2") ;;
        all) mtus=(1024 4096) ;;
        *) usage_error "--mtu takes 1024, 4096 or all" ;;
        esac
        ;;
    --lat-sizes) read -r -a lat_sizes <<<"$2" ;;
    --bw-sizes) read -r -a bw_sizes <<<"$2" ;;
    --rdt-sizes) read -r -a rdt_sizes <<<"$2" ;;
    --rndv) read -r -a rndvs <<<"$2" ;;
    --base) base=$2 ;;
    --rounds)
        [[ $2 =~ ^[1-9][0-9]*$ ]] || usage_error "--rounds takes a count of rounds, not '$2'"
        rounds=$2
        ;;
    *) usage_error "unknown argument '$1' (see --help)" ;;
    esac
    shift 2
done
for s in "${lat_sizes[@]}" "${bw_sizes[@]}" "${rdt_sizes[@]}"; do
    [[ $s =~ ^[1-9][0-9]*$ ]] || usage_error "sizes are byte counts, not '$s'"
done

# ---------------------------------------------------------------- inside: rxe0 is up
if ((inside)); then
    dev=${RDT_SOFTROCE_IBDEV:-rxe0}
    addr=${RDT_SOFTROCE_ADDR:-192.0.2.1}
    # GID 1 is the IPv4-mapped address on rxe (GID 0 is link-local); -F: the VM's CPU frequency
    # readings differ between cores, which perftest would otherwise refuse.
    common=(-d "$dev" -i 1 -x 1 -F)
    port=18515
    fail=0
    mtu=$(ibv_devinfo -d "$dev" | awk '/active_mtu/ { print $2; exit }')
    # In host mode /tmp is the host's: rdt_bench's JSON files go to a folder of our own.
    out=$(mktemp -d "${TMPDIR:-/tmp}/rdt-softroce-bench.XXXXXX")
    trap 'rm -rf "$out"' EXIT

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

    # Every figure also goes to $out/figures.ROUND, one per line, for the round's report:
    #   lat SIZE TYPICAL_US AVERAGE_US (ib_write_lat)   xchg SIZE US (verbs_xchg)
    #   bw SIZE GBITS (ib_write_bw average)   bwb SIZE GBITS (ib_write_bw -b, both directions' sum)
    #   rdt RUN SIZE US BUSBW_GBYTES (rdt_bench, out of place)
    # and, prefixed with the round's number, to $out/figures for the summary of --rounds.
    bench=$build/tools/rdt_bench
    opts=(-n 2 -c allreduce -d float32 -o sum)
    [[ -n ${BENCH_ITERS:-} ]] && opts+=(-i "$BENCH_ITERS")
    [[ -n ${BENCH_WARMUP:-} ]] && opts+=(-w "$BENCH_WARMUP")
    json_num() { # json_num FILE KEY: the number after "KEY": in rdt_bench's one-row JSON
        sed -n "s/.*\"$2\": \([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1
    }
    # A run is "verbs", "tcp", "verbs:X" (verbs with RDT_IB_RNDV=X, from --rndv) or "base"
    # (verbs with --base's rdt_bench). "verbs" and "base" alternate size by size.
    runs=(verbs)
    [[ -n $base ]] && runs=("verbs base")
    runs+=(tcp)
    for r in "${rndvs[@]}"; do runs+=("verbs:$r"); done

    # report FILE: one round's tables and ratios.
    report() {
        # The report. A figure missing (its run failed) shows as "-", and so do the ratios using it.
        # Bandwidth: the rdt sizes from the largest ib_write_bw size up, against the best ib_write_bw
        # average of this run (the closest to the rate rxe streams at); rdt's busbw (GB/s, 1e9 bytes)
        # x 8 is in perftest's decimal Gb/s (its --report_gbits divides bytes/s by 125000000).
        awk -v mtu="$mtu" -v sizes="${rdt_sizes[*]}" -v rndvs="${rndvs[*]}" -v base="$base" '
            function h(s) {
                if (s >= 1048576 && s % 1048576 == 0) return s / 1048576 " MiB"
                if (s >= 1024 && s % 1024 == 0) return s / 1024 " KiB"
                return s " B"
            }
            function ratio(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "-" }
            function v(x) { return x != "" ? x : "-" }
            $1 == "lat" { lat[$2] = $3; lavg[$2] = $4 }
            $1 == "xchg" { xchg[$2] = $3 }
            $1 == "bw" { bw[$2] = $3; if (ref == "" || $3 > bw[ref]) ref = $2; if ($2 > big) big = $2 }
            $1 == "bwb" { bwb[$2] = $3 }
            $1 == "rdt" { t[$2, $3] = $4; b[$2, $3] = $5 }
            END {
                n = split(sizes, s, " ")
                printf "\nrdt_bench -n 2 allreduce float32 sum, out of place: time per call, busbw in GB/s\n"
                printf "%9s %12s %12s %9s %12s %12s\n", "size", "verbs us", "tcp us", "verbs/tcp",
                    "verbs busbw", "tcp busbw"
                for (i = 1; i <= n; i++)
                    printf "%9s %12s %12s %9s %12s %12s\n", h(s[i]), v(t["verbs", s[i]]),
                        v(t["tcp", s[i]]), ratio(t["verbs", s[i]], t["tcp", s[i]]),
                        v(b["verbs", s[i]]), v(b["tcp", s[i]])
                printf "\nratios (active_mtu %s)\n", mtu
                for (i = 1; i <= n; i++)
                    if (s[i] in lat)
                        printf "  allreduce %s (verbs) / ib_write_lat %s typical: %s us / %s us = %s\n",
                            h(s[i]), h(s[i]), v(t["verbs", s[i]]), lat[s[i]],
                            ratio(t["verbs", s[i]], lat[s[i]])
                for (i = 1; i <= n; i++)
                    if (s[i] in lat)
                        printf "  allreduce %s (verbs) / ib_write_lat %s average: %s us / %s us = %s\n",
                            h(s[i]), h(s[i]), v(t["verbs", s[i]]), lavg[s[i]],
                            ratio(t["verbs", s[i]], lavg[s[i]])
                for (i = 1; i <= n; i++)
                    if (s[i] in xchg)
                        printf "  allreduce %s (verbs) / raw exchange %s (verbs_xchg): %s us / %s us = %s; raw exchange / ib_write_lat typical = %s\n",
                            h(s[i]), h(s[i]), v(t["verbs", s[i]]), xchg[s[i]],
                            ratio(t["verbs", s[i]], xchg[s[i]]), ratio(xchg[s[i]], lat[s[i]])
                for (i = 1; ref != "" && i <= n; i++) {
                    if (s[i] + 0 < big + 0) continue
                    x = b["verbs", s[i]]
                    printf "  allreduce %s (verbs) busbw / ib_write_bw %s: %s GB/s = %s Gb/s / %s Gb/s = %s\n",
                        h(s[i]), h(ref), v(x), x != "" ? sprintf("%.3f", x * 8) : "-", bw[ref],
                        ratio(x != "" ? x * 8 : "", bw[ref])
                    # both directions at once, as this allreduce moves its bytes: the most a
                    # 2-rank allreduce can reach on this device is one direction of that
                    if (ref in bwb)
                        printf "  allreduce %s (verbs) busbw / one direction of ib_write_bw -b %s: %s Gb/s / %.3f Gb/s = %s (ib_write_bw -b / 2 / ib_write_bw = %s)\n",
                            h(s[i]), h(ref), x != "" ? sprintf("%.3f", x * 8) : "-", bwb[ref] / 2,
                            ratio(x != "" ? x * 8 : "", bwb[ref] / 2), ratio(bwb[ref] / 2, bw[ref])
                }
                printf "  allreduce time verbs / tcp:"
                for (i = 1; i <= n; i++)
                    printf "%s %s %s", (i > 1 ? "," : ""), h(s[i]), ratio(t["verbs", s[i]], t["tcp", s[i]])
                printf "\n"
                m = split(rndvs, rv, " ")
                if (base != "") rv[++m] = "base"
                for (k = 1; k <= m; k++) {
                    r = rv[k] == "base" ? "base" : "verbs:" rv[k]
                    if (r == "base")
                        printf "\nverbs, base build %s (same run): time per call, busbw, ratios\n", base
                    else
                        printf "\nverbs with RDT_IB_RNDV=%s (same run): time per call, busbw, ratios\n", rv[k]
                    for (i = 1; i <= n; i++) {
                        x = b[r, s[i]]
                        printf "  %9s %12s us %10s GB/s  / ib_write_lat %s  / ib_write_bw %s  / verbs %s\n",
                            h(s[i]), v(t[r, s[i]]), v(x), (s[i] in lat) ? ratio(t[r, s[i]], lat[s[i]]) : "-",
                            (ref != "" && s[i] + 0 >= big + 0) ? ratio(x != "" ? x * 8 : "", bw[ref]) : "-",
                            ratio(t[r, s[i]], t["verbs", s[i]])
                    }
                }
            }' "$figs"
    }

    # summary FILE: with --rounds, each round's ratios against the two targets beside the floors
    # the device sets in the same round, and the median of each over the rounds. Latency: at each
    # size measured by ib_write_lat, verbs_xchg and rdt_bench. Bandwidth: at each rdt size from
    # the largest ib_write_bw size up, against that round's best ib_write_bw and (BW_BIDIR=1) one
    # direction of ib_write_bw -b at the same message size.
    summary() {
        awk -v sizes="${rdt_sizes[*]}" '
            function h(s) {
                if (s >= 1048576 && s % 1048576 == 0) return s / 1048576 " MiB"
                if (s >= 1024 && s % 1024 == 0) return s / 1024 " KiB"
                return s " B"
            }
            function r(a, b) { return (a != "" && b != "" && b > 0) ? a / b : "" }
            function f(x) { return x != "" ? sprintf("%.2f", x) : "-" }
            function keep(key, x) { if (x != "") { nv[key]++; val[key, nv[key]] = x } }
            function median(key,    k, j, t, a, m) {
                m = nv[key] + 0
                if (m == 0) return ""
                for (k = 1; k <= m; k++) a[k] = val[key, k]
                for (k = 2; k <= m; k++)
                    for (j = k; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
                return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
            }
            { if ($1 > rounds) rounds = $1 }
            $2 == "lat" { lat[$1, $3] = $4; haslat[$3] = 1 }
            $2 == "xchg" { xchg[$1, $3] = $4 }
            $2 == "bw" { bw[$1, $3] = $4; if (!(($1) in ref) || $4 > bw[$1, ref[$1]]) ref[$1] = $3
                         if ($3 + 0 > big + 0) big = $3 }
            $2 == "bwb" { bwb[$1, $3] = $4 }
            $2 == "rdt" && $3 == "verbs" { t[$1, $4] = $5; b[$1, $4] = $6 }
            END {
                n = split(sizes, s, " ")
                for (i = 1; i <= n; i++) {
                    z = s[i]
                    if (!(z in haslat)) continue
                    printf "\nsummary, allreduce %s over verbs: time (us) and ratios per round\n", h(z)
                    printf "%6s %13s %10s %10s %14s %16s %15s\n", "round", "ib_write_lat", "raw xchg",
                        "allreduce", "allreduce/lat", "raw xchg/lat", "allreduce/xchg"
                    for (k = 1; k <= rounds; k++) {
                        a = r(t[k, z], lat[k, z]); x = r(xchg[k, z], lat[k, z]); y = r(t[k, z], xchg[k, z])
                        keep("a" z, a); keep("x" z, x); keep("y" z, y)
                        printf "%6d %13s %10s %10s %14s %16s %15s\n", k, lat[k, z] != "" ? lat[k, z] : "-",
                            xchg[k, z] != "" ? xchg[k, z] : "-", t[k, z] != "" ? t[k, z] : "-", f(a), f(x), f(y)
                    }
                    printf "%6s %13s %10s %10s %14s %16s %15s\n", "median", "", "", "", f(median("a" z)),
                        f(median("x" z)), f(median("y" z))
                }
                for (i = 1; big != "" && i <= n; i++) {
                    z = s[i]
                    if (z + 0 < big + 0) continue
                    printf "\nsummary, allreduce %s over verbs: busbw against ib_write_bw (one way) and one direction of ib_write_bw -b, per round (Gb/s)\n", h(z)
                    printf "%6s %9s %12s %10s %15s %17s %17s\n", "round", "msg", "ib_write_bw", "-b / 2",
                        "busbw", "busbw/ib_write_bw", "busbw/(-b / 2)"
                    for (k = 1; k <= rounds; k++) {
                        m = ref[k]
                        g = b[k, z] != "" ? b[k, z] * 8 : ""
                        d = bwb[k, m] != "" ? bwb[k, m] / 2 : ""
                        a = r(g, bw[k, m]); x = r(d, bw[k, m]); y = r(g, d)
                        keep("ba" z, a); keep("bx" z, x); keep("by" z, y)
                        printf "%6d %9s %12s %10s %15s %17s %17s\n", k, m != "" ? h(m) : "-",
                            bw[k, m] != "" ? bw[k, m] : "-", d != "" ? sprintf("%.3f", d) : "-",
                            g != "" ? sprintf("%.3f", g) : "-", f(a), f(y)
                    }
                    printf "%6s %9s %12s %10s %15s %17s %17s\n", "median", "", "", "", "", f(median("ba" z)),
                        f(median("by" z))
                    printf "  one direction of ib_write_bw -b / ib_write_bw (the device'"'"'s own duplex share), median: %s\n",
                        f(median("bx" z))
                }
            }' "$1"
    }

    printf '\nactive_mtu %s on %s\n' "$mtu" "$dev"
    : >"$out/figures"
    for ((round = 1; round <= rounds; round++)); do
        ((rounds == 1)) || printf '\n=== round %d of %d\n' "$round" "$rounds"
        figs=$out/figures.$round
        : >"$figs"
        printf '%-13s %9s %6s  %s\n' test bytes iters figures
        for size in "${lat_sizes[@]}"; do
            iters=${LAT_ITERS:-$((size <= 65536 ? 1000 : 100))}
            if row=$(run_pair ib_write_lat -s "$size" -n "$iters"); then
                # bytes iters t_min t_max t_typical t_avg t_stdev p99 p99.9
                read -r -a f <<<"$row"
                printf '%-13s %9s %6s  typical %s us, avg %s us, p99 %s us\n' \
                    ib_write_lat "${f[0]}" "${f[1]}" "${f[4]}" "${f[5]}" "${f[7]}"
                echo "lat $size ${f[4]} ${f[5]}" >>"$figs"
            else
                fail=1
            fi
            # the raw-verbs floor of what a 2-rank allreduce does: both sides write at once
            # (verbs_xchg.c; built with the verbs transport)
            xchg=$build/tools/verbs_xchg
            ((size >= 1 && size <= 4096)) && [[ -x $xchg ]] || continue
            if row=$(timeout 300 "$xchg" -d "$dev" -s "$size" -n "${XCHG_ITERS:-500}" -r 9 2>&1); then
                # xchg BYTES: median M us, min A, max B (...)
                x=$(sed -n 's/^xchg [0-9]*: median \([0-9.]*\) us.*/\1/p' <<<"$row")
                printf '%-13s %9s %6s  median %s us per exchange (both ways at once)\n' \
                    verbs_xchg "$size" "9x${XCHG_ITERS:-500}" "$x"
                [[ -n $x ]] && echo "xchg $size $x" >>"$figs"
            else
                echo "verbs_xchg -s $size: failed: $row" >&2
                fail=1
            fi
        done
        for size in "${bw_sizes[@]}"; do
            iters=$((${BW_BYTES:-268435456} / size))
            ((iters < 100)) && iters=100
            ((iters > 5000)) && iters=5000
            if row=$(run_pair ib_write_bw -s "$size" -n "$iters" --report_gbits); then
                # bytes iters bw_peak bw_avg msg_rate
                read -r -a f <<<"$row"
                printf '%-13s %9s %6s  avg %s Gb/s, %s Mmsg/s\n' \
                    ib_write_bw "${f[0]}" "${f[1]}" "${f[3]}" "${f[4]}"
                echo "bw $size ${f[3]}" >>"$figs"
            else
                fail=1
            fi
            # BW_BIDIR=1: the same both ways at once (-b), as a 2-rank allreduce moves its data; perftest
            # reports the sum of the two directions
            [[ ${BW_BIDIR:-0} == 1 ]] || continue
            if row=$(run_pair ib_write_bw -b -s "$size" -n "$iters" --report_gbits); then
                read -r -a f <<<"$row"
                printf '%-13s %9s %6s  avg %s Gb/s both ways, %s Mmsg/s\n' \
                    "ib_write_bw -b" "${f[0]}" "${f[1]}" "${f[3]}" "${f[4]}"
                echo "bwb $size ${f[3]}" >>"$figs"
            else
                fail=1
            fi
        done
        if ((${#rdt_sizes[@]})); then
            for group in "${runs[@]}"; do
                for size in "${rdt_sizes[@]}"; do
                    for run in $group; do
                        tr=${run%%:*}
                        prog=$bench
                        [[ $run == base ]] && tr=verbs prog=$base/tools/rdt_bench
                        env=(RDT_TRANSPORT="$tr")
                        [[ $run == *:* ]] && env+=(RDT_IB_RNDV="${run#*:}")
                        j=$out/$run.$size.json
                        if ! env "${env[@]}" "$prog" "${opts[@]}" -b "$size" -e "$size" -j "$j" \
                            >"$out/$run.$size.log" 2>&1; then
                            echo "${env[*]} rdt_bench ${opts[*]} -b $size -e $size: failed" >&2
                            cat "$out/$run.$size.log" >&2
                            fail=1
                            continue
                        fi
                        t=$(json_num "$j" oop_time_us)
                        b=$(json_num "$j" oop_busbw)
                        if [[ -z $t || -z $b ]]; then
                            echo "rdt_bench $run $size: no row in its JSON output:" >&2
                            cat "$j" "$out/$run.$size.log" >&2
                            fail=1
                            continue
                        fi
                        echo "rdt $run $size $t $b" >>"$figs"
                    done
                done
            done
        fi
        ((${#rdt_sizes[@]})) && report "$figs"
        sed "s/^/$round /" "$figs" >>"$out/figures"
    done
    ((rounds > 1)) && summary "$out/figures"
    exit "$fail"
fi

# ---------------------------------------------------------------- outside
# The VM replaces /tmp and /run: a checkout there must be shared explicitly. The build tree is
# shared read-write (it may live anywhere, /tmp included), by its absolute path since the VM
# runs in tools/.
shares=()
if ((${#rdt_sizes[@]})); then
    [[ -x $build/tools/rdt_bench ]] || usage_error "$build/tools/rdt_bench not found: build first" \
        "(cmake -S . -B build && cmake --build build), or pass --build DIR"
    build=$(cd "$build" && pwd -P)
    shares+=(--rw "$build")
    if [[ -n $base ]]; then
        [[ -x $base/tools/rdt_bench ]] || usage_error "$base/tools/rdt_bench not found"
        base=$(cd "$base" && pwd -P)
        shares+=(--rw "$base")
    fi
fi
case $HERE/ in /tmp/* | /run/*) shares+=(--ro "$HERE") ;; esac
cd "$HERE"
rc=0
for mtu in "${mtus[@]}"; do
    "$HERE/softroce.sh" --mtu "$mtu" "${shares[@]}" -- bash "$HERE/softroce-bench.sh" --inside \
        --build "$build" --lat-sizes "${lat_sizes[*]}" --bw-sizes "${bw_sizes[*]}" \
        --rdt-sizes "${rdt_sizes[*]}" --rndv "${rndvs[*]}" --rounds "$rounds" ${base:+--base "$base"} || rc=1
done
exit "$rc"

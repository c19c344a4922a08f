#!/usr/bin/env bash
# bench-train.sh - rdmatrain's trainer against PyTorch DDP (gloo), side by side in one run.
#
# For each round and each rank count W in $NPS, runs `rdmatrain -np W train` and the PyTorch
# peer (tools/peers/torch_ddp.py under torch.distributed.run) on the same model, SGD settings,
# per-rank batch and data, one after the other, and reports per W: the median over rounds of
# each run's median epoch time (epochs 2.. of $EPOCHS; the first one warms up), samples/s,
# the final test accuracy, rdmatrain's share of step time waiting on communication, and the
# time ratio rdmatrain / torch. W = 1 runs one process at the global batch of 2 ranks
# (batch 2B), as the data-parallel comparison needs. Then, with MODES, the other parallel modes
# of rdmatrain at the same global batch.
#
#   tools/bench-train.sh [--build DIR]       (ROUNDS=3 EPOCHS=3 NPS="1 2 4" BATCH=64)
#
# Knobs: ROUNDS, EPOCHS, NPS, BATCH (per rank), LR (0.1), MOMENTUM (0), MODES ("tensor
# pipeline ps" or ""), TORCH=0 to skip the peer. Needs python3-torch (RDT_PEERS=1
# tools/install-deps.sh). OPENBLAS_CORETYPE is passed through as set: compare like with like.
set -euo pipefail

BUILD=build
[[ "${1:-}" == "--build" ]] && BUILD=$2
ROUNDS=${ROUNDS:-3}
EPOCHS=${EPOCHS:-3}
NPS=${NPS:-"1 2 4"}
BATCH=${BATCH:-64}
LR=${LR:-0.1}
MOMENTUM=${MOMENTUM:-0}
MODES=${MODES-"tensor pipeline ps"}
TORCH=${TORCH:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
LAUNCHER=$BUILD/trainer/rdmatrain
[[ -x $LAUNCHER ]] || { echo "bench-train: $LAUNCHER not built (cmake --build $BUILD)" >&2; exit 2; }
OUT=$(mktemp -d /tmp/rdt-bench-train-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
PORT=$((29000 + RANDOM % 2000))

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# rdmatrain: "epoch E/N: ... T s ... P% of step time waiting" -> lines "E T P ACC"
rdt_run() { # W batch log [extra args]
    local w=$1 b=$2 log=$3; shift 3
    "$LAUNCHER" -np "$w" train --epochs "$EPOCHS" --batch "$b" --lr "$LR" --momentum "$MOMENTUM" \
        --schedule constant --no-progress "$@" > "$log" 2>&1 || { cat "$log" >&2; return 1; }
    sed -n 's/^\[0\] epoch \([0-9]*\)\/[0-9]*: .*test accuracy \([0-9.]*\), \([0-9.]*\) s, .* \([0-9]*\)% of step time.*/\1 \3 \4 \2/p' "$log"
}

torch_run() { # W batch log
    local w=$1 b=$2 log=$3
    if [[ $w == 1 ]]; then
        OMP_NUM_THREADS=1 /usr/bin/python3 "$HERE/peers/torch_ddp.py" train --epochs "$EPOCHS" \
            --batch "$b" --lr "$LR" --momentum "$MOMENTUM" > "$log" 2>&1
    else
        PORT=$((PORT + 1))
        GLOO_SOCKET_IFNAME=lo OMP_NUM_THREADS=1 /usr/bin/python3 -m torch.distributed.run \
            --redirects 9:1 --tee 9:1 --nnodes 1 --nproc_per_node "$w" --master_addr 127.0.0.1 \
            --master_port "$PORT" "$HERE/peers/torch_ddp.py" train --epochs "$EPOCHS" --batch "$b" \
            --lr "$LR" --momentum "$MOMENTUM" > "$log" 2>&1
    fi || { cat "$log" >&2; return 1; }
    sed -n 's/.*torch epoch \([0-9]*\): \([0-9.]*\) s, .*test accuracy \([0-9.]*\).*/\1 \2 0 \3/p' "$log"
}

# per run: median epoch time over epochs 2.. (all if only one)
run_median() { awk -v e="$EPOCHS" '(e == 1 || $1 > 1) {print $2}' "$1" | median; }
run_comm() { awk -v e="$EPOCHS" '(e == 1 || $1 > 1) {print $3}' "$1" | median; }
run_acc() { tail -1 "$1" | awk '{print $4}'; }

echo "bench-train: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $ROUNDS rounds x $EPOCHS epochs," \
     "batch $BATCH per rank, lr $LR, momentum $MOMENTUM"
for r in $(seq 1 "$ROUNDS"); do
    for w in $NPS; do
        b=$BATCH
        [[ $w == 1 ]] && b=$((2 * BATCH))
        rdt_run "$w" "$b" "$OUT/rdt.log" > "$OUT/rdt-$w-$r"
        echo "$(run_median "$OUT/rdt-$w-$r") $(run_comm "$OUT/rdt-$w-$r") $(run_acc "$OUT/rdt-$w-$r")" >> "$OUT/rdt-$w"
        if [[ $TORCH == 1 ]]; then
            torch_run "$w" "$b" "$OUT/torch.log" > "$OUT/torch-$w-$r"
            echo "$(run_median "$OUT/torch-$w-$r") 0 $(run_acc "$OUT/torch-$w-$r")" >> "$OUT/torch-$w"
        fi
        for m in $MODES; do
            [[ $w == 1 ]] && continue
            case $m in
            tensor | pipeline) args=(--parallel "$m"); mb=$((BATCH * w)) ;;
            ps) args=(--parallel ps --servers 1); mb=$BATCH ;;
            esac
            [[ $m == pipeline && $w -gt 3 ]] && continue # 3 layers: at most 3 stages
            rdt_run "$w" "$mb" "$OUT/m.log" "${args[@]}" > "$OUT/$m-$w-$r"
            echo "$(run_median "$OUT/$m-$w-$r") $(run_comm "$OUT/$m-$w-$r") $(run_acc "$OUT/$m-$w-$r")" >> "$OUT/$m-$w"
        done
    done
    echo "round $r done" >&2
done

samples=60000
echo
echo "| ranks | global batch | rdmatrain epoch s | torch DDP epoch s | ratio | rdmatrain samples/s | torch samples/s | comm share | test acc rdt / torch |"
echo "|---|---|---|---|---|---|---|---|---|"
for w in $NPS; do
    gb=$((BATCH * w)); [[ $w == 1 ]] && gb=$((2 * BATCH))
    rt=$(awk '{print $1}' "$OUT/rdt-$w" | median)
    rc=$(awk '{print $2}' "$OUT/rdt-$w" | median)
    ra=$(awk '{print $3}' "$OUT/rdt-$w" | median)
    steps=$((samples / gb))
    if [[ $TORCH == 1 ]]; then
        tt=$(awk '{print $1}' "$OUT/torch-$w" | median)
        ta=$(awk '{print $3}' "$OUT/torch-$w" | median)
    else
        tt=nan ta=nan
    fi
    awk -v w="$w" -v gb="$gb" -v rt="$rt" -v tt="$tt" -v rc="$rc" -v ra="$ra" -v ta="$ta" -v n=$((steps * gb)) \
        'BEGIN {printf "| %d | %d | %.3f | %s | %s | %.0f | %s | %s%% | %s / %s |\n", w, gb, rt, tt, \
         (tt == "nan" ? "-" : sprintf("%.2f", rt / tt)), n / rt, (tt == "nan" ? "-" : sprintf("%.0f", n / tt)), rc, ra, ta}'
done
if [[ -n $MODES ]]; then
    echo
    echo "| mode | ranks | global batch | epoch s | samples/s | comm share | test acc |"
    echo "|---|---|---|---|---|---|---|"
    for m in $MODES; do
        for w in $NPS; do
            [[ -f $OUT/$m-$w ]] || continue
            gb=$((BATCH * w))
            [[ $m == ps ]] && gb=$((BATCH * (w - 1)))
            t=$(awk '{print $1}' "$OUT/$m-$w" | median)
            c=$(awk '{print $2}' "$OUT/$m-$w" | median)
            a=$(awk '{print $3}' "$OUT/$m-$w" | median)
            awk -v m="$m" -v w="$w" -v gb="$gb" -v t="$t" -v c="$c" -v a="$a" -v n=$(((samples / gb) * gb)) \
                'BEGIN {printf "| %s | %d | %d | %.3f | %.0f | %s%% | %s |\n", m, w, gb, t, n / t, c, a}'
        done
    done
fi

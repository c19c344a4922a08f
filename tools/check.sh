#!/usr/bin/env bash
# check.sh - install what is needed, build with -Werror, and run every test (all ctest labels:
# unit, integration, slow, ...). This is the test command of README.md, and what CI runs first
# (.ci/run then runs --sanitize and --softroce).
#
#   tools/check.sh              build in build/ and run every test
#   tools/check.sh --sanitize   the same under AddressSanitizer + UndefinedBehaviorSanitizer,
#                               in build-asan/
#   tools/check.sh --tsan       the tests where threads meet (abort from another thread, the
#                               mux's helper thread, faults, timeouts, mismatches) under
#                               ThreadSanitizer, in build-tsan/ (a race report fails the run)
#   tools/check.sh --softroce   the tests labelled `softroce` (the verbs transport on a real RDMA
#                               device) on SoftRoCE, through tools/softroce.sh: in a qemu VM
#                               where the kernel has no rdma_rxe. Installs the SoftRoCE packages
#                               too, and builds in build/ with the same options as the plain run
#                               (after it, as in CI, nothing is rebuilt).
#
# --softroce passes only if at least one test ran and every one passed in the VM. ctest runs
# there with RDT_TEST_REQUIRE_RDMA=1 (a test program without a device fails instead of
# skipping), and a skip all the same (ctest's or cmocka's), a VM timeout (RDT_VM_TIMEOUT,
# default 3000 s here; the guest's console is printed) or anything tools/softroce.sh leaves
# behind (a qemu, its temp folder, an rxe device or dummy netdev) fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build
ARGS=(-DRDT_WERROR=ON)
MODE=${1:-}
case $MODE in
"") ;;
--sanitize)
    BUILD=build-asan
    ARGS+=(-DRDT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ;;
--tsan)
    BUILD=build-tsan
    ARGS+=(-DRDT_TSAN=ON -DCMAKE_BUILD_TYPE=Debug)
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}
    ;;
--softroce) ;;
*)
    echo "check.sh: unknown argument '$MODE' (none, --sanitize, --tsan or --softroce)" >&2
    exit 2
    ;;
esac

# ----------------------------------------------------------------------------- --softroce
# What softroce.sh could leave on this host in host mode: rxe devices and its dummy netdevs
# (named rdtsr<pid>). Listed before and after the run, so that devices that were already there
# are not blamed on it.
host_rdma_state() {
    local d
    for d in /sys/class/infiniband/*; do
        if [[ -e $d ]]; then echo "rdma device ${d##*/}"; fi
    done
    ip -o link show type dummy 2>/dev/null |
        awk -F': ' '$2 ~ /^rdtsr/ { sub("@.*", "", $2); print "netdev " $2 }' || true
}

# Processes (other than this script) whose command line or open files point into folder $1:
# qemu and `timeout` name the VM's temp folder in their arguments; the readers of the VM's
# serial ports hold its fifos open.
procs_using() {
    local dir=$1 p pid args f
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [[ $pid == "$$" ]] && continue
        args=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        if [[ $args == *"$dir/"* ]]; then
            echo "  pid $pid: $args"
            continue
        fi
        for f in "$p"/fd/*; do
            if [[ $(readlink "$f" 2>/dev/null) == "$dir/"* ]]; then
                echo "  pid $pid (holds $(readlink "$f")): $args"
                break
            fi
        done
    done
}

# Verdict on ctest's JUnit file $1 (it holds every test's status and output, passed or not):
# at least one test, none failed, none skipped. ctest counts a skipped test (exit 77) as passed
# ("100% tests passed"), and cmocka prints "[  SKIPPED ] name" for a case that called skip() yet
# exits 0: inside the VM the device is there, so either is a defect, not a pass.
check_junit() {
    local xml=$1 tests skipped failures
    if [[ ! -s $xml ]]; then
        echo "check.sh --softroce: ctest wrote no results ($xml)" >&2
        return 1
    fi
    # ctest writes the <testsuite> attributes one per line: tests="N" skipped="N" failures="N"
    tests=$(sed -n 's/^[[:space:]]*tests="\([0-9]*\)".*/\1/p' "$xml" | head -n 1)
    skipped=$(sed -n 's/^[[:space:]]*skipped="\([0-9]*\)".*/\1/p' "$xml" | head -n 1)
    failures=$(sed -n 's/^[[:space:]]*failures="\([0-9]*\)".*/\1/p' "$xml" | head -n 1)
    if [[ -z $tests || -z $skipped || -z $failures ]]; then
        echo "check.sh --softroce: cannot read the counts in $xml" >&2
        return 1
    fi
    local bad=0
    if ((tests == 0)); then
        echo "check.sh --softroce: ctest ran no test (expected the label softroce)" >&2
        bad=1
    fi
    ((failures == 0)) || bad=1 # ctest's own output already names them
    if ((skipped)) || grep -q '<skipped' "$xml"; then
        echo "check.sh --softroce: $skipped test(s) skipped in the VM:" >&2
        grep -B1 '<skipped' "$xml" | sed -n 's/.*<testcase name="\([^"]*\)".*/  \1/p' >&2
        bad=1
    fi
    if grep -q '^\[  SKIPPED \] [^0-9]' "$xml"; then
        echo "check.sh --softroce: test cases skipped (cmocka) in the VM:" >&2
        grep '^\[  SKIPPED \] [^0-9]' "$xml" | sort -u >&2
        bad=1
    fi
    ((bad == 0)) && echo "$tests"
}

run_softroce() {
    RDT_SOFTROCE=1 tools/install-deps.sh
    # build/, not a folder of its own: the leg runs the plain build's test binaries (non-sanitized,
    # -Werror), which CI has just built and tested on the host; a second tree would only cost a
    # second full build.
    cmake -S . -B "$BUILD" "${ARGS[@]}"
    cmake --build "$BUILD" -j"$(nproc)"

    # A private folder: tmp/ is softroce.sh's $TMPDIR (its temp folder, initramfs, fifos, state
    # share go there, so what it leaves behind shows, whatever else runs on this machine); out/ is
    # shared into the VM for ctest's JUnit file, apart from the build tree's Testing/ logs that
    # any other ctest run in build/ rewrites.
    local work rc=0
    work=$(mktemp -d "${TMPDIR:-/tmp}/rdt-check-softroce.XXXXXX")
    # shellcheck disable=SC2064  # $work is fixed now
    trap "rm -rf '$work'" EXIT
    mkdir "$work/tmp" "$work/out"

    # The VM hides /tmp and /run: a checkout there is shared read-only so that the VM can cd to it.
    local share=(--rw "$BUILD" --rw "$work/out")
    case $PWD/ in /tmp/* | /run/*) share+=(--ro "$PWD") ;; esac

    local before
    before=$(host_rdma_state)

    # RDT_TEST_REQUIRE_RDMA=1: a test program that finds no RDMA device fails instead of skipping,
    # so a VM that came up without rxe0 cannot pass. ctest's --timeout only covers tests without a
    # TIMEOUT property of their own (tests/CMakeLists.txt sets one on each: 600 s, more for the
    # slow ones). --test-output-size-passed: ctest keeps only 1 KiB of a passed test's output,
    # which would cut off cmocka's skip summary at its end. RDT_VM_TIMEOUT bounds the whole VM,
    # boot included: a hang ends as status 124 with the guest's console printed. The leg takes
    # about 3 minutes here with 4 softroce tests (the VM's ctest 2.5, most of it
    # test_collectives_verbs); 50 minutes leaves room for the tests to come, and CI (about 7
    # minutes before this leg) still ends well inside its 90.
    echo "== softroce: ctest -L softroce in $BUILD, through tools/softroce.sh"
    TMPDIR=$work/tmp RDT_VM_TIMEOUT=${RDT_VM_TIMEOUT:-3000} \
        tools/softroce.sh "${share[@]}" -- env RDT_TEST_REQUIRE_RDMA=1 \
        ctest --test-dir "$BUILD" -L softroce --no-tests=error --output-on-failure --timeout 1500 \
        --test-output-size-passed 10000000 --output-junit "$work/out/ctest.xml" || rc=$?

    local fail=0 leaked n
    if ((rc)); then
        echo "check.sh --softroce: the softroce tests failed (exit status $rc)" >&2
        fail=1
    fi
    n=$(check_junit "$work/out/ctest.xml") || fail=1

    # Nothing left behind: softroce.sh removes all it made on every exit path (its EXIT trap);
    # this checks it from outside.
    leaked=$(procs_using "$work/tmp")
    if [[ -n $leaked ]]; then
        echo "check.sh --softroce: processes of tools/softroce.sh still running:" >&2
        echo "$leaked" >&2
        fail=1
    fi
    if [[ -n $(ls -A "$work/tmp") ]]; then
        echo "check.sh --softroce: tools/softroce.sh left files in its temp folder:" >&2
        ls -lA "$work/tmp" >&2
        fail=1
    fi
    leaked=$(comm -13 <(sort <<<"$before") <(host_rdma_state | sort))
    if [[ -n $leaked ]]; then
        echo "check.sh --softroce: tools/softroce.sh left on this host:" >&2
        echo "$leaked" >&2
        fail=1
    fi
    ((fail == 0)) || exit 1
    echo "== softroce: $n test(s) passed on SoftRoCE, nothing left behind"
}

if [[ $MODE == --softroce ]]; then
    run_softroce
    exit 0
fi

tools/install-deps.sh
cmake -S . -B "$BUILD" "${ARGS[@]}"
cmake --build "$BUILD" -j"$(nproc)"
if [[ $MODE == --tsan ]]; then
    # the whole suite takes 15 minutes under ThreadSanitizer on 2 cores: the tests with threads
    ctest --test-dir "$BUILD" --output-on-failure --timeout 900 --no-tests=error \
        -R '^(test_tcp|test_shm|test_collectives|test_fault|test_timeouts|test_mismatch)$'
    exit 0
fi
ctest --test-dir "$BUILD" --output-on-failure --timeout 900

# The libFuzzer targets (clang; tests/CMakeLists.txt registers each as a ctest labelled fuzz,
# bounded in time, seeded from tests/fuzz/corpus/<target>/): build every one ctest lists, and
# run them all. Only those targets are built here, not the whole tree with clang.
if [[ "$BUILD" == build ]]; then
    CC=clang cmake -S . -B build-fuzz -DRDT_FUZZ=ON -DRDT_WERROR=ON >/dev/null
    mapfile -t fuzz_targets < <(ctest --test-dir build-fuzz -L fuzz -N |
        sed -n 's/^ *Test *#[0-9]*: *\(fuzz_[A-Za-z0-9_]*\)$/\1/p')
    if ((${#fuzz_targets[@]} == 0)); then
        echo "check.sh: no fuzz target registered in build-fuzz (ctest -L fuzz -N)" >&2
        exit 1
    fi
    cmake --build build-fuzz --target "${fuzz_targets[@]}" -j"$(nproc)"
    ctest --test-dir build-fuzz -L fuzz --no-tests=error --output-on-failure
fi

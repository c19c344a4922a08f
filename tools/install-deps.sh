#!/usr/bin/env bash
# install-deps.sh - the Debian packages rdmatrain needs to build and test (run as root, or it
# uses sudo). Idempotent: installs only what is missing.
set -euo pipefail

PKGS=(build-essential cmake pkg-config libcmocka-dev
    libibverbs-dev librdmacm-dev # the verbs transport (built when both are found; its tests skip
                                 # without a device)
    clang libclang-rt-14-dev # the libFuzzer target of the hosts-file parser
    openssh-server           # the launcher test that reaches "remote" ranks through a real sshd
    openmpi-bin              # the launcher test that starts ranks with Open MPI's mpirun
    iproute2                 # the launcher test across network namespaces (ip netns)
    libhwloc-dev             # topology discovery (topo/)
    libopenblas-dev zlib1g-dev # the trainer's math and its gzipped IDX reader
    dataset-fashion-mnist    # the trainer's dataset (/usr/share/datasets/fashion-mnist)
    python3-torch libtorch-dev pybind11-dev python3-dev python3-numpy) # bindings/torch and its tests
[[ "${RDT_PEERS:-0}" == 1 ]] && PKGS+=(openmpi-bin libopenmpi-dev)
# RDT_SOFTROCE=1: what tools/softroce.sh needs (rxe in a VM when the host kernel has no rdma_rxe)
[[ "${RDT_SOFTROCE:-0}" == 1 ]] && PKGS+=(qemu-system-x86 linux-image-amd64 busybox-static rdma-core
    ibverbs-utils perftest ibverbs-providers libibverbs-dev librdmacm-dev iproute2)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

SUDO=()
[[ $(id -u) -ne 0 ]] && SUDO=(sudo)
echo "installing: ${missing[*]}"
"${SUDO[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

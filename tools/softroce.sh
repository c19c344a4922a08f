#!/usr/bin/env bash
# softroce.sh - run a command with a SoftRoCE device (rdma_rxe) named rxe0 up, then remove it.
#
#   tools/softroce.sh [options] -- COMMAND [ARGS...]
#
#   --mtu 1024|4096   active MTU of rxe0 (default 1024; 4096 sets the netdev's MTU to 4200)
#   --rw DIR          VM only: share DIR read-write at the same path (repeatable; created if
#                     missing). The host's root is read-only in the VM: a build tree that ctest
#                     or a compiler writes to must be shared this way.
#   --ro DIR          VM only: share DIR read-only at the same path (repeatable); needed only
#                     for folders the VM hides under fresh file systems (/tmp, /run, /dev).
#   --netdev IFACE    host mode only: put rxe0 on IFACE instead of a new dummy netdev
#                     (IFACE is neither changed nor removed; it needs an IPv4 address).
#   --vm, --host      force a mode (default: host when the running kernel can load rdma_rxe,
#                     else the VM)
#
# Host mode (a kernel with rdma_rxe, as root): creates a dummy netdev with the documentation
# address 192.0.2.1/24, `rdma link add rxe0 type rxe netdev <dummy>`, runs COMMAND, and
# removes rxe0, the dummy and the modules it loaded.
#
# VM mode (these machines: the kernel has no InfiniBand support): boots Debian's kernel
# (linux-image-amd64) under qemu with an initramfs built here from busybox-static and the
# kernel's own modules. The guest mounts the host's root read-only over 9p, puts fresh tmpfs on
# /tmp, /run, /dev/shm, sets up the same dummy netdev and rxe0, and runs COMMAND chrooted into
# the host's root, in the current directory, with the caller's exported environment, stdin from
# /dev/null and `ulimit -l unlimited`. COMMAND's stdout and stderr come out on this script's
# stdout and stderr (two virtio-serial ports); the guest kernel's console goes to a log that is
# printed when the VM fails (RDT_VM_VERBOSE=1 streams it to stderr). The VM has no network card:
# nothing leaves it. Works as non-root too when /boot/vmlinuz-* is readable.
#
# In COMMAND's environment: RDT_SOFTROCE_IBDEV=rxe0, RDT_SOFTROCE_NETDEV, RDT_SOFTROCE_ADDR
# (192.0.2.1; on rxe, GID index 1 is this IPv4-mapped address and GID 0 is link-local),
# RDT_SOFTROCE_MODE=host|vm.
#
# Exit status: COMMAND's; 124 if the VM timed out; 125 if the device could not be set up.
# Everything made here (netdev, rxe link, temp dir, initramfs, qemu) is removed on exit,
# Ctrl-C included.
#
# Knobs (environment), VM mode:
#   RDT_VM_TIMEOUT  1800 (s, the whole VM run; then qemu is killed and the exit status is 124)
#   RDT_VM_MEM      2048 (MiB)          RDT_VM_SMP      2 (vCPUs)
#   RDT_VM_ACCEL    tcg (kvm hangs at boot on these machines; kvm elsewhere is much faster)
#   RDT_VM_CPU      qemu64 under tcg, host under kvm
#   RDT_VM_KERNEL   a vmlinuz (default: the newest /boot/vmlinuz-* whose modules have rdma_rxe)
#   RDT_VM_VERBOSE  1: stream the guest's console to stderr and print the VM's run time
# Missing packages are installed with tools/install-deps.sh (RDT_SOFTROCE=1).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=softroce.sh
ADDR=192.0.2.1
PREFIX=24
IBDEV=rxe0

die() {
    echo "$PROG: $*" >&2
    exit 125
}
usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 125
}

MTU=1024
MODE=auto
NETDEV=
RW_DIRS=()
RO_DIRS=()
while (($#)); do
    case $1 in
    --mtu)
        [[ ${2:-} == 1024 || ${2:-} == 4096 ]] || die "--mtu takes 1024 or 4096"
        MTU=$2
        shift 2
        ;;
    --rw | --ro)
        [[ -n ${2:-} ]] || die "$1 takes a folder"
        [[ $2 != *$'\n'* ]] || die "$1: a newline in a path is not supported"
        if [[ $1 == --rw ]]; then RW_DIRS+=("$2"); else RO_DIRS+=("$2"); fi
        shift 2
        ;;
    --netdev)
        [[ -n ${2:-} ]] || die "--netdev takes an interface name"
        NETDEV=$2
        shift 2
        ;;
    --vm) MODE=vm && shift ;;
    --host) MODE=host && shift ;;
    -h | --help) usage ;;
    --)
        shift
        break
        ;;
    *) die "unknown argument '$1' (see --help; the command goes after --)" ;;
    esac
done
(($#)) || usage

# 4200 leaves room for the RoCE v2 headers (IP, UDP, BTH, ICRC) around a 4096-byte payload;
# rxe takes the largest IB MTU that fits the netdev's MTU (1500 -> 1024).
NETMTU=1500
[[ $MTU == 4096 ]] && NETMTU=4200

host_can_rxe() {
    [[ -d /sys/module/rdma_rxe ]] || modprobe -n -q rdma_rxe 2>/dev/null
}
if [[ $MODE == auto ]]; then
    if host_can_rxe; then MODE=host; else MODE=vm; fi
fi

# Wait until DEV's port 1 is ACTIVE and GID 1 (the IPv4-mapped one) is filled in: rxe fills
# its GID table from netdev events, shortly after the link is added. $1 is a sysfs root.
wait_rxe_ready() {
    local p=$1/class/infiniband/$IBDEV/ports/1 i
    for ((i = 0; i < 100; i++)); do
        if grep -q ACTIVE "$p/state" 2>/dev/null && [[ -r $p/gids/1 ]] &&
            ! grep -q '^0000:0000:0000:0000:0000:0000:0000:0000$' "$p/gids/1"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ================================================================================ host mode
run_host() {
    [[ $(id -u) -eq 0 ]] || die "creating rxe0 on this kernel needs root"
    [[ ${#RW_DIRS[@]} -eq 0 && ${#RO_DIRS[@]} -eq 0 ]] || echo "$PROG: host mode: --rw/--ro ignored" >&2
    if ! command -v rdma >/dev/null || ! command -v ip >/dev/null; then
        RDT_SOFTROCE=1 "$HERE/install-deps.sh" >&2
    fi
    [[ ! -e /sys/class/infiniband/$IBDEV ]] || die "$IBDEV already exists; remove it first (rdma link delete $IBDEV)"

    # globals, for the EXIT trap
    LOADED=() DUMMY='' MADE_DUMMY=0 MADE_LINK=0
    local m
    # shellcheck disable=SC2317  # reached through the trap
    cleanup_host() {
        local i
        set +e
        ((MADE_LINK)) && rdma link delete "$IBDEV" 2>/dev/null
        ((MADE_DUMMY)) && ip link delete "$DUMMY" 2>/dev/null
        for ((i = ${#LOADED[@]} - 1; i >= 0; i--)); do
            modprobe -r -q "${LOADED[i]}" 2>/dev/null || true
        done
        return 0
    }
    trap cleanup_host EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP

    for m in crc32_generic dummy rdma_rxe ib_uverbs rdma_ucm; do
        [[ -d /sys/module/$m ]] && continue
        local args=()
        [[ $m == dummy ]] && args=(numdummies=0) # no stray dummy0
        if modprobe -q "$m" "${args[@]}" 2>/dev/null; then
            LOADED+=("$m")
        fi
    done

    if [[ -n $NETDEV ]]; then
        DUMMY=$NETDEV
        ip -4 addr show dev "$DUMMY" | grep -q inet || die "$DUMMY has no IPv4 address"
        ADDR=$(ip -4 -o addr show dev "$DUMMY" | awk '{sub("/.*", "", $4); print $4; exit}')
    else
        DUMMY=rdtsr$$
        DUMMY=${DUMMY:0:15}
        ip link add "$DUMMY" type dummy || die "cannot create a dummy netdev"
        MADE_DUMMY=1
        ip link set "$DUMMY" mtu "$NETMTU" || die "cannot set $DUMMY's MTU to $NETMTU"
        ip addr add "$ADDR/$PREFIX" dev "$DUMMY" || die "cannot add $ADDR/$PREFIX to $DUMMY"
        ip link set "$DUMMY" up || die "cannot bring $DUMMY up"
    fi
    rdma link add "$IBDEV" type rxe netdev "$DUMMY" || die "rdma link add $IBDEV failed"
    MADE_LINK=1
    wait_rxe_ready /sys || die "$IBDEV port 1 did not become ACTIVE with an IPv4 GID"
    ulimit -l unlimited 2>/dev/null || echo "$PROG: warning: cannot raise ulimit -l" >&2

    local rc=0
    RDT_SOFTROCE_IBDEV=$IBDEV RDT_SOFTROCE_NETDEV=$DUMMY RDT_SOFTROCE_ADDR=$ADDR \
        RDT_SOFTROCE_MODE=host "$@" || rc=$?
    exit "$rc"
}

# ================================================================================== VM mode
# The modules the guest loads, as roots whose dependencies are resolved through modules.dep:
# first what mounts the host's root (virtio PCI, 9p over virtio) and the two virtio-serial
# ports, then SoftRoCE. crc32_generic has no symbol dependency from rdma_rxe (rxe asks the
# crypto API for "crc32" at load time and there is no modprobe in the initramfs to autoload it),
# so it comes first, by hand.
BOOT_MODS=(virtio_pci 9pnet_virtio 9p virtio_console)
RDMA_MODS=(crc32_generic ib_core ib_uverbs rdma_ucm rdma_rxe dummy)

# Folders the guest covers with fresh file systems: anything under them is invisible unless
# shared with --rw or --ro.
hidden_in_vm() {
    case $1/ in /tmp/* | /run/* | /dev/* | /proc/* | /sys/*) return 0 ;; esac
    return 1
}

pick_kernel() {
    local k ver
    if [[ -n ${RDT_VM_KERNEL:-} ]]; then
        echo "$RDT_VM_KERNEL"
        return
    fi
    for k in $(printf '%s\n' /boot/vmlinuz-* | sort -rV); do
        ver=${k#/boot/vmlinuz-}
        if compgen -G "/lib/modules/$ver/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko*" >/dev/null; then
            echo "$k"
            return
        fi
    done
}

# Emit, in load order (dependencies first), the modules.dep paths of the given module names.
# Built-in modules are skipped; an unknown module is an error.
resolve_mods() {
    local moddir=$1
    shift
    awk -v want="$*" '
        function base(p) { sub(".*/", "", p); sub("\\.ko.*$", "", p); gsub("-", "_", p); return p }
        function visit(p,   n, i, d) {
            if (p in done) return
            done[p] = 1
            n = split(deps[p], d, " ")
            for (i = 1; i <= n; i++) visit(d[i])
            print p
        }
        FILENAME ~ /modules\.builtin$/ { builtin[base($0)] = 1; next }
        { p = $1; sub(":$", "", p); deps[p] = ""; for (i = 2; i <= NF; i++) deps[p] = deps[p] " " $i
          path[base(p)] = p }
        END {
            n = split(want, w, " ")
            for (i = 1; i <= n; i++) {
                m = w[i]; gsub("-", "_", m)
                if (m in path) visit(path[m])
                else if (!(m in builtin)) { print "missing module " m > "/dev/stderr"; exit 1 }
            }
        }' "$moddir/modules.dep" "$moddir/modules.builtin"
}

# Copy one module into the initramfs, uncompressed (busybox insmod may lack xz/zstd).
copy_mod() {
    local src=$1 dst=$2
    case $src in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz) xz -dc "$src" >"$dst" ;;
    *.ko.zst) zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) die "unknown module format: $src" ;;
    esac
}

# The guest's /init (busybox ash). Reads /state/config (the second 9p share) for the MTU and
# the extra shares, writes /state/status (COMMAND's exit status, or "setup <why>") at the end.
write_init() {
    cat >"$1" <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
echo "rdt-vm: init"
ERR=/dev/console
fail() {
    echo "rdt-vm: setup failed: $*" | tee -a "$ERR"
    grep -q ' /state ' /proc/mounts && echo "setup $*" >/state/status
    sync
    poweroff -f
    sleep 10
}
echo "rdt-vm: modules:" $(cat /mod/boot.list /mod/rdma.list)
for m in $(cat /mod/boot.list); do insmod "/mod/$m.ko" || fail "insmod $m"; done
NEW=/newroot
O9P="trans=virtio,version=9p2000.L,msize=262144"
mount -t 9p -o "$O9P,cache=mmap" rdtstate /state || fail "mount of the state share"
. /state/config
# the virtio-serial ports by name: /dev/vportNpM
for p in /sys/class/virtio-ports/*; do
    case $(cat "$p/name") in
    rdt.out) OUT=/dev/${p##*/} ;;
    rdt.err) ERR=/dev/${p##*/} ;;
    esac
done
[ -n "$OUT" ] && [ "$ERR" != /dev/console ] || fail "virtio-serial ports not found"
mount -t 9p -o "$O9P,ro,cache=loose" hostroot $NEW || fail "mount of the host's root"
for m in $(cat /mod/rdma.list); do
    arg=
    [ "$m" = dummy ] && arg=numdummies=0
    insmod "/mod/$m.ko" $arg || fail "insmod $m"
done
mount -t devtmpfs dev $NEW/dev
mkdir -p $NEW/dev/pts $NEW/dev/shm
# what udev would add: bash's process substitution needs /dev/fd
ln -sf /proc/self/fd $NEW/dev/fd
ln -sf /proc/self/fd/0 $NEW/dev/stdin
ln -sf /proc/self/fd/1 $NEW/dev/stdout
ln -sf /proc/self/fd/2 $NEW/dev/stderr
mount -t devpts devpts $NEW/dev/pts
mount -t tmpfs -o mode=1777 shm $NEW/dev/shm
mount -t proc proc $NEW/proc
mount -t sysfs sys $NEW/sys
mount -t tmpfs -o mode=1777 tmp $NEW/tmp
mount -t tmpfs -o mode=755 run $NEW/run
mkdir -p $NEW/run/rdt
mount --bind /state $NEW/run/rdt
# The RTC gives whole seconds, so the guest starts up to 1 s behind the host and make sees
# files written through 9p (stamped by the host) in the future: set the clock from a file that
# the host stamps now.
rm -f /state/clock && : >/state/clock &&
    chroot $NEW date -s "@$(chroot $NEW stat -c %.9Y /run/rdt/clock)" >/dev/null
# extra shares, parents first (the list is sorted); mount points under tmpfs are made here
while read -r tag mode path; do
    mkdir -p "$NEW$path" 2>/dev/null
    cache=mmap
    [ "$mode" = ro ] && cache=loose
    mount -t 9p -o "$O9P,$mode,cache=$cache" "$tag" "$NEW$path" || fail "mount of $path"
done </state/shares
ulimit -l unlimited
# the host's name, so that the host's /etc/hosts (read-only here) resolves it as it does outside
hostname "$HOSTNAME"
chroot $NEW ip link set lo up
chroot $NEW ip link add rdt0 type dummy || fail "ip link add rdt0 type dummy"
chroot $NEW ip link set rdt0 mtu "$NETMTU" || fail "mtu $NETMTU"
chroot $NEW ip addr add "$ADDR/$PREFIX" dev rdt0
chroot $NEW ip link set rdt0 up
chroot $NEW rdma link add "$IBDEV" type rxe netdev rdt0 || fail "rdma link add $IBDEV"
P=/sys/class/infiniband/$IBDEV/ports/1
i=0
until grep -q ACTIVE $P/state && ! grep -q '^0000:0000:0000:0000:0000:0000:0000:0000$' $P/gids/1; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "$IBDEV port 1 not ACTIVE with an IPv4 GID"
    sleep 0.1
done
echo "rdt-vm: $IBDEV up on rdt0 (mtu $NETMTU), gid 1 $(cat $P/gids/1)"
echo "rdt-vm: ready after $(cut -d' ' -f1 /proc/uptime) s"
chroot $NEW /bin/bash /run/rdt/cmd.sh </dev/null >"$OUT" 2>"$ERR"
rc=$?
echo "rdt-vm: command exited with $rc at $(cut -d' ' -f1 /proc/uptime) s"
echo "$rc" >/state/status.tmp && mv /state/status.tmp /state/status
sync
while read -r tag mode path; do echo "$path"; done </state/shares | sort -r | while read -r path; do
    umount "$NEW$path" 2>/dev/null
done
umount /state
poweroff -f
sleep 10
INIT
}

run_vm() {
    local missing=() p
    for p in qemu-system-x86_64 busybox rdma ip ibv_devinfo; do
        command -v "$p" >/dev/null || missing+=("$p")
    done
    [[ -x /bin/busybox ]] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null |
        grep -q "install ok installed" || missing+=(busybox-static)
    [[ -n $(pick_kernel) ]] || missing+=(linux-image-amd64)
    if ((${#missing[@]})); then
        echo "$PROG: missing ${missing[*]}: installing the SoftRoCE packages" >&2
        RDT_SOFTROCE=1 "$HERE/install-deps.sh" >&2 || die "tools/install-deps.sh failed"
    fi
    local kernel kver moddir
    kernel=$(pick_kernel)
    [[ -n $kernel && -r $kernel ]] || die "no readable kernel with rdma_rxe in /boot (need linux-image-amd64${kernel:+; $kernel unreadable})"
    kver=${kernel##*/vmlinuz-}
    moddir=/lib/modules/$kver
    [[ -f $moddir/modules.dep ]] || die "$moddir/modules.dep not found (RDT_VM_KERNEL=$kernel)"

    local cwd
    cwd=$(pwd -P)
    T=$(mktemp -d "${TMPDIR:-/tmp}/rdt-softroce.XXXXXX")
    # State: qemu's pid (through timeout), the readers of the serial ports, fds 3-5.
    QPID=
    READERS=()
    # shellcheck disable=SC2317  # reached through the trap
    cleanup_vm() {
        local pid
        set +e
        if [[ -n $QPID ]] && kill -0 "$QPID" 2>/dev/null; then
            kill -TERM "$QPID" 2>/dev/null
            wait "$QPID" 2>/dev/null
        fi
        exec 3>&- 4>&- 5>&-
        for pid in "${READERS[@]}"; do
            # the readers end by themselves at EOF; only a stuck one is killed
            for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        done
        rm -rf "$T"
        return 0
    }
    trap cleanup_vm EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP

    # ---------------------------------------------------------------- initramfs
    local I=$T/initramfs m path
    mkdir -p "$I"/{bin,dev,proc,sys,newroot,state,mod} "$T/state"
    cp /bin/busybox "$I/bin/busybox"
    ln -s busybox "$I/bin/sh"
    local group
    for group in boot rdma; do
        local names
        if [[ $group == boot ]]; then names=("${BOOT_MODS[@]}"); else names=("${RDMA_MODS[@]}"); fi
        resolve_mods "$moddir" "${names[@]}" >"$T/$group.dep" || die "cannot resolve modules in $moddir"
        : >"$I/mod/$group.list"
        while read -r path; do
            m=${path##*/}
            m=${m%%.ko*}
            [[ -f $I/mod/$m.ko ]] && continue
            copy_mod "$moddir/$path" "$I/mod/$m.ko"
            echo "$m" >>"$I/mod/$group.list"
        done <"$T/$group.dep"
    done
    write_init "$I/init"
    chmod 755 "$I/init"
    (cd "$I" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) >"$T/initramfs.cpio" ||
        die "cannot build the initramfs"

    # ---------------------------------------------------------------- shares
    local shares=() d mode tag i=0 covered=0
    for d in "${RW_DIRS[@]}"; do
        mkdir -p "$d"
        shares+=("rw $(cd "$d" && pwd -P)")
    done
    for d in "${RO_DIRS[@]}"; do
        [[ -d $d ]] || die "--ro $d: not a folder"
        shares+=("ro $(cd "$d" && pwd -P)")
    done
    local qshares=()
    : >"$T/state/shares"
    while read -r mode path; do
        [[ -n $path ]] || continue
        [[ $path != / ]] || die "share / itself is the read-only root; pick a subfolder"
        tag=rdt$i
        i=$((i + 1))
        echo "$tag $mode $path" >>"$T/state/shares"
        if [[ $mode == ro ]]; then
            qshares+=(-virtfs "local,path=$path,mount_tag=$tag,security_model=none,readonly=on,multidevs=remap")
        else
            qshares+=(-virtfs "local,path=$path,mount_tag=$tag,security_model=none,multidevs=remap")
        fi
        [[ $cwd/ == "$path"/* ]] && covered=1
    done < <(((${#shares[@]})) && printf '%s\n' "${shares[@]}" | sort -k2)
    if hidden_in_vm "$cwd" && ((!covered)); then
        die "the current folder $cwd is under a folder the VM replaces (/tmp, /run, /dev): pass --ro $cwd or --rw $cwd"
    fi

    # ---------------------------------------------------------------- config and command
    {
        echo "NETMTU=$NETMTU"
        echo "ADDR=$ADDR"
        echo "PREFIX=$PREFIX"
        echo "IBDEV=$IBDEV"
        echo "HOSTNAME=$(hostname)"
    } >"$T/state/config"
    {
        echo "# written by softroce.sh: the caller's exported environment, folder and command"
        export -p | grep -v -E '^declare -x (PWD|OLDPWD|SHLVL|TMPDIR|SHELLOPTS|BASHOPTS|_)(=|$)' || true
        printf 'export RDT_SOFTROCE_IBDEV=%q RDT_SOFTROCE_NETDEV=rdt0 RDT_SOFTROCE_ADDR=%q RDT_SOFTROCE_MODE=vm\n' \
            "$IBDEV" "$ADDR"
        echo "ulimit -l unlimited"
        printf 'cd -- %q || exit 125\n' "$cwd"
        printf 'exec'
        printf ' %q' "$@"
        printf '\n'
    } >"$T/state/cmd.sh"

    # ---------------------------------------------------------------- qemu
    # qemu's pipe chardev writes NAME.out and reads NAME.in (a single fifo would be read back
    # by qemu itself). Each .out is held open here too, so that its reader never blocks on open
    # and sees EOF only once qemu and this script have both closed it.
    mkfifo "$T"/{out,err,console}.{in,out}
    exec 3<>"$T/out.out" 4<>"$T/err.out" 5<>"$T/console.out"
    cat <"$T/out.out" 3>&- 4>&- 5>&- &
    READERS+=($!)
    cat <"$T/err.out" >&2 3>&- 4>&- 5>&- &
    READERS+=($!)
    if [[ ${RDT_VM_VERBOSE:-0} == 1 ]]; then
        tee "$T/console.log" <"$T/console.out" >&2 3>&- 4>&- 5>&- &
    else
        cat <"$T/console.out" >"$T/console.log" 3>&- 4>&- 5>&- &
    fi
    READERS+=($!)

    # Under TCG the plain qemu64 CPU moves rxe's bytes about twice as fast as -cpu max (whose
    # wide vector state the guest kernel saves and copies with, all emulated).
    local accel=${RDT_VM_ACCEL:-tcg} cpu=host
    [[ $accel == tcg ]] && accel=tcg,thread=multi cpu=qemu64
    local timeout_s=${RDT_VM_TIMEOUT:-1800}
    # shellcheck disable=SC2054  # commas separate qemu's suboptions, not array elements
    local qemu=(
        qemu-system-x86_64 -nodefaults -no-user-config -no-reboot
        -machine pc -accel "$accel" -cpu "${RDT_VM_CPU:-$cpu}" -smp "${RDT_VM_SMP:-2}" -m "${RDT_VM_MEM:-2048}"
        -display none -vga none -monitor none -nic none
        -kernel "$kernel" -initrd "$T/initramfs.cpio"
        -append "console=ttyS0 quiet loglevel=4 panic=-1 8250.nr_uarts=1 rdinit=/init"
        -chardev "pipe,id=con,path=$T/console" -serial chardev:con
        -device virtio-serial-pci
        -chardev "pipe,id=out,path=$T/out" -device virtserialport,chardev=out,name=rdt.out
        -chardev "pipe,id=err,path=$T/err" -device virtserialport,chardev=err,name=rdt.err
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
        -virtfs "local,path=$T/state,mount_tag=rdtstate,security_model=none,multidevs=remap"
        "${qshares[@]}"
    )
    local t0 t1 qrc=0
    t0=$(date +%s.%N)
    timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null >"$T/qemu.log" 2>&1 3>&- 4>&- 5>&- &
    QPID=$!
    wait "$QPID" || qrc=$?
    QPID=
    t1=$(date +%s.%N)
    exec 3>&- 4>&- 5>&-
    for p in "${READERS[@]}"; do wait "$p" 2>/dev/null || true; done
    READERS=()

    local status=
    [[ -f $T/state/status ]] && status=$(<"$T/state/status")
    if [[ $status =~ ^[0-9]+$ ]]; then
        [[ ${RDT_VM_VERBOSE:-0} == 1 ]] &&
            awk -v a="$t0" -v b="$t1" -v p="$PROG" 'BEGIN { printf "%s: the VM ran %.1f s in all\n", p, b - a }' >&2
        exit "$status"
    fi
    if ((qrc == 124 || qrc == 137)); then
        echo "$PROG: the VM did not finish within RDT_VM_TIMEOUT=$timeout_s s: killed" >&2
    elif [[ -n $status ]]; then
        echo "$PROG: in the VM: $status" >&2
    else
        echo "$PROG: the VM stopped without a result (qemu exit status $qrc)" >&2
    fi
    echo "--- qemu:" >&2
    tail -n 20 "$T/qemu.log" >&2
    if [[ ${RDT_VM_VERBOSE:-0} != 1 ]]; then
        echo "--- guest console (last 40 lines):" >&2
        tail -n 40 "$T/console.log" | tr -d '\r' >&2
    fi
    ((qrc == 124 || qrc == 137)) && exit 124
    exit 125
}

if [[ $MODE == host ]]; then
    host_can_rxe || die "this kernel cannot load rdma_rxe (use the VM: drop --host)"
    run_host "$@"
else
    run_vm "$@"
fi

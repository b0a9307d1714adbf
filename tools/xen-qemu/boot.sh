#!/usr/bin/env bash
# boot.sh: boots Xen with a Linux dom0 and its initramfs in QEMU (TCG) and writes the serial console to a log; exits with QEMU's status.
#
#   XEN=... KERNEL=... INITRD=... tools/xen-qemu/boot.sh x86_64|arm32 LOG
# Environment:
#   XEN        x86_64: the hypervisor as a 32-bit multiboot ELF (xen.gz decompressed); arm32: xen-4.17-armhf
#   KERNEL     dom0's kernel (vmlinuz)          INITRD   dom0's initramfs (make-initramfs.sh)
#   DOM0_ARGS  dom0's command line (default: the Xen console; add xenqemu.* words, see dom0-init.sh)
#   XEN_ARGS   Xen's command line (default: 512 MiB for dom0, one dom0 vCPU, all logging); on x86_64 it
#              always follows "console=com1 com1=115200,8n1 smap=0 bootscrub=0 spec-ctrl=eager-fpu
#              sched=credit" (Xen's log on the serial port; eager FPU switching, because QEMU's TCG lets
#              XSAVE/XRSTOR run with CR0.TS set, which corrupts guests' FPU state under Xen's lazy
#              switching; the credit scheduler, because under credit2 the emulated machine stalled with
#              a runnable vCPU and an idle CPU: docs/xen-qemu.md)
#   TIMEOUT    seconds before QEMU is killed (default 300; exit status 124 then)
#   SMP, MEM   QEMU's CPUs (default 2) and MiB of RAM (default 2048)
#   QEMU_ACCEL, QEMU_CPU  x86_64: replace "tcg" in -accel tcg (e.g. tcg,thread=single: both CPUs in one
#              host thread, docs/xen-qemu.md) and "max" in -cpu max (e.g. max,-fsgsbase)
#   QEMU_EXTRA more QEMU arguments (split on spaces), e.g. a disk for dom0: -drive file=F,if=virtio,format=raw
#   QEMU_MONITOR  a path: QEMU's monitor listens there (a unix socket), to look at a machine that
#              stopped making progress (`info registers -a`, `nmi`) while it still runs
#   QEMU_STDIN a path (a FIFO the caller holds open): the serial console's input, so the caller can
#              type to Xen (three CTRL-a switch its input to Xen's key handlers: 'q', 'e', 'd' dumps);
#              the console is then plain `-serial stdio` (no QEMU escape character)
#
# x86_64: QEMU's own multiboot loader starts Xen (-kernel) and hands it two modules (-initrd "kernel
# args,initramfs"; a comma inside args would have to be doubled). arm32: the "virt" board with the
# virtualization extensions; two guest-loader devices put dom0's kernel and initramfs in memory and
# describe them in the device tree, where Xen finds them. dom0's /init reboots when its test is done;
# with -no-reboot that ends QEMU, so a finished boot exits 0 and a hang ends in the timeout.
set -euo pipefail
arch=${1:?x86_64 or arm32}; log=${2:?log file}
: "${XEN:?XEN: the hypervisor}" "${KERNEL:?KERNEL: the dom0 kernel}" "${INITRD:?INITRD: the dom0 initramfs}"
xen_args=${XEN_ARGS:-dom0_mem=512M,max:512M dom0_max_vcpus=1 loglvl=all guest_loglvl=all}
case $arch in
    x86_64)
        qemu=(qemu-system-x86_64 -accel "${QEMU_ACCEL:-tcg}" -cpu "${QEMU_CPU:-max}"
              -kernel "$XEN" -append "console=com1 com1=115200,8n1 smap=0 bootscrub=0 spec-ctrl=eager-fpu sched=credit $xen_args"
              -initrd "$KERNEL ${DOM0_ARGS:-console=hvc0 earlyprintk=xen},$INITRD") ;;
    arm32)
        qemu=(qemu-system-arm -M virt,virtualization=on,highmem=off -cpu cortex-a15
              -kernel "$XEN" -append "$xen_args"
              -device "guest-loader,addr=0x49000000,kernel=$KERNEL,bootargs=${DOM0_ARGS:-console=hvc0 earlycon=xen}"
              -device "guest-loader,addr=0x50000000,initrd=$INITRD") ;;
    *) echo "boot.sh: unknown architecture $arch (x86_64 or arm32)" >&2; exit 2 ;;
esac
console=(-nographic)
[ -z "${QEMU_STDIN:-}" ] || console=(-display none -serial stdio)
set +e
timeout --foreground -k 5 "${TIMEOUT:-300}" "${qemu[@]}" -smp "${SMP:-2}" -m "${MEM:-2048}" \
    "${console[@]}" -no-reboot -nic none ${QEMU_EXTRA:-} ${QEMU_MONITOR:+-monitor unix:$QEMU_MONITOR,server,nowait} \
    <"${QEMU_STDIN:-/dev/null}" 2>&1 | stdbuf -oL tr -d '\r' > "$log"   # line-buffered: the log is live
exit "${PIPESTATUS[0]}"

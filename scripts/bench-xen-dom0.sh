#!/bin/sh
# bench-xen-dom0.sh: dom0's test in `make bench-xen`: the same xsbench workloads against whichever Xenstore this boot has (the stub domain or C xenstored), with its CPU time around each.
#
# Reads BENCH_SIDE (stub or cxen) and BENCH_SECONDS (default 5) from dom0's command line. Prints one
# line per workload:  @@BENCH <side> <workload> <xsbench CSV line> <xenstore CPU seconds>
# and for the stub, from a second, shorter run of each workload with its profile on (CONTROL profile):
#                      @@PROFILE stub <workload> ops <n> commits <n> <name> <value> ...
# (xsbench's CSV columns are listed in bench/xsbench.c). The CPU time is the stub domain's vCPU time
# from `xl vcpu-list` (0.1 s steps), or C xenstored's user + system time from /proc/PID/stat.
seconds=${BENCH_SECONDS:-5}
side=${BENCH_SIDE:-stub}

xenstore_cpu() {
    if [ "$side" = stub ]; then
        xl vcpu-list Xenstore 2>/dev/null | awk 'NR > 1 { t += $6 } END { printf "%.1f", t }'
    else
        pid=$(cat /run/xenstored.pid 2>/dev/null)
        awk -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" '{ printf "%.2f", ($14 + $15) / hz }' /proc/$pid/stat
    fi
}

# A moment for the boot's own requests (xl, xenconsoled) to settle.
sleep 2
# BENCH_PIN: where dom0's vCPU and the stub's run (Xen 4.17 has 2 physical CPUs here): "apart"
# (dom0 on CPU 0, the stub on CPU 1), "same" (both on CPU 0), or unset (Xen's scheduler decides).
case "${BENCH_PIN:-}" in
    apart) xl vcpu-pin 0 all 0; [ "$side" = stub ] && xl vcpu-pin Xenstore all 1 ;;
    same)  xl vcpu-pin 0 all 0; [ "$side" = stub ] && xl vcpu-pin Xenstore all 0 ;;
esac
# Where each vCPU is at a moment: "@@PLACE <workload> <domain>=<cpu> ...".
placement() { echo "@@PLACE $1 $(xl vcpu-list 2>/dev/null | awk 'NR > 1 { printf "%s=%s ", $1, $4 }')"; }
# The workloads, one per line: <name>:<xsbench arguments>.
workloads='write:-m write -n 1
read:-m read -n 1
directory:-m dir -n 1
vmstart-1:-m vmstart -n 1 -w 40
vmstart-8:-m vmstart -n 8 -w 40'
echo "$workloads" | while IFS= read -r workload; do
    name=${workload%%:*}
    placement "$name"
    before=$(xenstore_cpu)
    line=$(/usr/bin/xsbench -P "$side" ${workload#*:} -d "$seconds" 2>/tmp/xsbench.err </dev/null | tail -1)
    after=$(xenstore_cpu)
    [ -n "$line" ] || line="failed: $(tail -2 /tmp/xsbench.err | tr '\n' ' ')"
    echo "@@BENCH $side $name $line $(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.2f", b - a }')"
done
# The stub's own account: each workload again, shorter, with its profile on (CONTROL profile; every
# phase switch then reads the clock, which costs, so the rates above are measured without it).
if [ "$side" = stub ]; then
    echo "$workloads" | while IFS= read -r workload; do
        name=${workload%%:*}
        xenstore-control profile start >/dev/null 2>&1
        line=$(/usr/bin/xsbench -P "$side" ${workload#*:} -d "${PROFILE_SECONDS:-3}" 2>/dev/null </dev/null | tail -1)
        counts=$(echo "$line" | awk -F, '{ printf "ops %s commits %s", $7, $9 }')
        echo "@@PROFILE $side $name $counts $(xenstore-control profile stop 2>/dev/null | tr '\n' ' ')"
    done
fi
# Whether Xen emulates the TSC for the domains (the cost of the stub's clock readings): Xen's 's' key.
xl debug-keys s >/dev/null 2>&1 && xl dmesg | grep -a 'TSC not marked\|TSC marked\|): mode=' | tail -4 | sed 's/^/@@TSC /'
xl list

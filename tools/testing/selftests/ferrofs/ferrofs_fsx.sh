#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fsx: FERROFS_FSX_OPS (default 100000; scripts/test runs 20000, or 100000 with --long)
# random reads, writes, mmap reads and writes, truncates, fallocates, hole
# punches, fsyncs and reopens of one file, each read checked against fsx's model of the
# file; on a single device and on raid1 (side by side, on other devices), then a small
# file. fsck after each.

ntests=7
. "$(dirname "$0")/lib.sh"
begin_test 3
ops="${FERROFS_FSX_OPS:-100000}"
command -v fsx >/dev/null || { echo "# fsx not installed (scripts/setup installs it)"; exit $KSFT_FAIL; }
work="$(mktemp -d /tmp/ferrofs-fsx.XXXXXX)"
cat >"$work/fsx.toml" <<'T'
flen = 262144
[opsize]
max = 65536
# Never zero: fsx takes the EINVAL every Linux filesystem returns for a zero-length
# posix_fallocate as "not supported" and stops.
min = 1
[weights]
close_open = 1
read = 10
write = 10
mapread = 10
mapwrite = 10
invalidate = 1
truncate = 4
fsync = 1
fdatasync = 1
posix_fallocate = 4
punch_hole = 4
sendfile = 2
T

# run_fsx NAME SEED MOUNTPOINT DEVICE...: formats, mounts at MOUNTPOINT, runs fsx; the
# status and log go to $work/NAME.{rc,log}.
run_fsx() {
	local name="$1" seed="$2" dir="$3"; shift 3
	local profile=single
	[ $# -gt 1 ] && profile=raid1
	"$mkfs" -f -d "$profile" -m "$profile" "$@" >/dev/null || { echo 1 >"$work/$name.rc"; return; }
	mkdir -p "$dir"
	local opts=""
	for d in "${@:2}"; do opts="${opts:+$opts,}device=$d"; done
	mount -t ferrofs ${opts:+-o "$opts"} "$1" "$dir" || { echo 1 >"$work/$name.rc"; return; }
	fsx -q -N "$ops" -S "$seed" -f "$work/fsx.toml" -P "$work" "$dir/fsx.file" >"$work/$name.log" 2>&1
	echo $? >"$work/$name.rc"
	umount "$dir"
}

report_fsx() { # NAME DEVICE...
	local name="$1"; shift
	if [ "$(cat "$work/$name.rc")" = 0 ]; then
		ok "fsx $ops operations, $name"
	else
		not_ok "fsx $ops operations, $name"
		# What went wrong, then the last operations before it.
		grep -vE '^\[ERROR fsx\] +[0-9]+ ' "$work/$name.log" | head -n 20 | diag
		grep -E '^\[ERROR fsx\] +[0-9]+ ' "$work/$name.log" | tail -n 8 | diag
	fi
	check "fsck clean after fsx, $name" fsck_clean "$@"
}

# Side by side: two filesystems, two vCPUs.
run_fsx "single device" 1 "$work/m1" "$d0" &
run_fsx "raid1" 2 "$work/m2" "$d1" "$d2" &
wait
report_fsx "single device" "$d0"
report_fsx "raid1" "$d1" "$d2"
# A small file and small operations, where truncates, holes and extends cross block edges
# all the time (a tenth of the operations).
sed -i 's/^flen = .*/flen = 32768/; s/^max = .*/max = 8192/' "$work/fsx.toml"
ops=$((ops / 10))
run_fsx "small file" 3 "$work/m1" "$d0"
report_fsx "small file" "$d0"
check_log_clean
rm -rf "$work"
tap_end

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fsx: 100000 random reads, writes, mmap reads and writes, truncates, fallocates, hole
# punches, fsyncs and reopens of one file, each read checked against fsx's model of the
# file; on a single device and on raid1. Then fsck.

ntests=7
. "$(dirname "$0")/lib.sh"
begin_test 2
ops="${FERROFS_FSX_OPS:-100000}"
command -v fsx >/dev/null || { echo "# fsx not installed (scripts/setup installs it)"; exit $KSFT_FAIL; }
work="$(mktemp -d /tmp/ferrofs-fsx.XXXXXX)"
cat >"$work/fsx.toml" <<'T'
flen = 4194304
[opsize]
max = 262144
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

run_fsx() { # NAME SEED DEVICE...
	local name="$1" seed="$2"; shift 2
	"$mkfs" -f -d "$( [ $# -gt 1 ] && echo raid1 || echo single)" "$@" >/dev/null
	mount_ferrofs "$@"
	if fsx -q -N "$ops" -S "$seed" -f "$work/fsx.toml" -P "$work" "$mnt/fsx.file" >"$work/$name.log" 2>&1; then
		ok "fsx $ops operations, $name"
	else
		not_ok "fsx $ops operations, $name"; tail -n 30 "$work/$name.log" | diag
	fi
	umount "$mnt"
	check "fsck clean after fsx, $name" fsck_clean "$@"
}

run_fsx "single device" 1 "$d0"
run_fsx "raid1" 2 "$d0" "$d1"
# A second seed with a small file, where truncates and extends cross block edges often.
sed -i 's/^flen = .*/flen = 65536/; s/^max = .*/max = 16384/' "$work/fsx.toml"
run_fsx "small file" 3 "$d0"
check_log_clean
rm -rf "$work"
tap_end

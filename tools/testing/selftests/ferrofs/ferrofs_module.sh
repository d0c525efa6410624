#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The ferrofs module: loads, registers its filesystem type, refuses to mount devices that
# hold no (valid) ferrofs, unloads, and leaves a clean kernel log.
#
# Environment: FERROFS_KO (default fs/ferrofs/ferrofs.ko from the repository root),
# FERROFS_DISKS (scratch block devices; the mount tests skip without one).

set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
ko="${FERROFS_KO:-$root/fs/ferrofs/ferrofs.ko}"
disk="${FERROFS_DISKS%% *}"
export PATH="$PATH:/usr/sbin:/sbin"

KSFT_PASS=0 KSFT_FAIL=1 KSFT_SKIP=4
ntests=16 n=0 failed=0

ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1"; }
skip() { n=$((n + 1)); echo "ok $n $1 # SKIP $2"; }
check() { # check DESCRIPTION COMMAND...: passes when COMMAND succeeds
	local desc="$1"; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
diag() { sed 's/^/# /'; }

echo "TAP version 13"
echo "1..$ntests"

if [ "$(id -u)" != 0 ]; then
	for ((i = 0; i < ntests; i++)); do skip "ferrofs module test" "needs root"; done
	exit $KSFT_SKIP
fi

loaded() { grep -q '^ferrofs ' /proc/modules; }
was_loaded=0
loaded && was_loaded=1
listed() { grep -qw ferrofs /proc/filesystems; }
log_mark="ferrofs-selftest-$$-$RANDOM"
echo "$log_mark" >/dev/kmsg
log_since_mark() { dmesg | sed -n "/$log_mark/,\$p"; }

# 1: the module exists and carries the expected metadata.
info="$(modinfo "$ko" 2>&1)"
if grep -q '^license: *GPL$' <<<"$info" && grep -q '^author: *ferrofs developers$' <<<"$info" &&
	grep -q '^description: *.' <<<"$info"; then
	ok "module metadata (license, author, description)"
else
	not_ok "module metadata (license, author, description)"; diag <<<"$info"
fi

# 2-3: unload (if a runner loaded it already), and the type goes away with it.
if [ "$was_loaded" = 1 ]; then
	check "rmmod of the preloaded module succeeds" rmmod ferrofs
else
	skip "rmmod of the preloaded module succeeds" "module was not preloaded"
fi
check "/proc/filesystems does not list ferrofs without the module" bash -c '! grep -qw ferrofs /proc/filesystems'

# 4-5: load it and see the filesystem type registered.
if out="$(insmod "$ko" 2>&1)"; then ok "insmod succeeds"; else not_ok "insmod succeeds"; diag <<<"$out"; fi
check "/proc/filesystems lists ferrofs" listed

# 6-11: mounts of devices without a valid ferrofs fail cleanly with the right errno and a
# kernel log line that says why.
mnt="$(mktemp -d)"
# mount(2) itself, so the errno is seen as the kernel returned it (mount(8) rewords it).
sys_mount() { # DEVICE DIR: prints "ok" or the errno number
	python3 -c '
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
r = libc.mount(sys.argv[1].encode(), sys.argv[2].encode(), b"ferrofs", 0, None)
print("ok" if r == 0 else ctypes.get_errno())
' "$1" "$2"
}
expect_mount_failure() { # DESCRIPTION ERRNO-NAME LOG-PATTERN
	local desc="$1" want="$2" logpat="$3" got
	got="$(sys_mount "$disk" "$mnt" 2>&1)"
	local want_nr
	want_nr="$(python3 -c "import errno; print(errno.$want)")"
	if [ "$got" = ok ]; then
		umount "$mnt"
		not_ok "$desc: mount fails with $want"
	elif [ "$got" = "$want_nr" ]; then
		ok "$desc: mount fails with $want"
	else
		not_ok "$desc: mount fails with $want"; echo "got errno $got, want $want_nr" | diag
	fi
	if log_since_mark | grep -q "$logpat"; then ok "$desc: kernel log says why"; else
		not_ok "$desc: kernel log says why"; log_since_mark | tail -n 5 | diag
	fi
}
# Blank: zeros over every superblock copy (64 KiB, 64 MiB and 256 GiB in), whatever an
# earlier test left on the disk.
wipe_superblocks() {
	local size_mib=$(($(blockdev --getsize64 "$disk") >> 20)) at
	for at in 0 64 $((256 << 10)); do
		[ "$at" -lt "$size_mib" ] || continue
		dd if=/dev/zero of="$disk" bs=1M seek="$at" count=1 conv=fsync status=none
	done
}
if [ -b "$disk" ]; then
	wipe_superblocks
	expect_mount_failure "blank device" EINVAL "ferrofs: $(basename "$disk"): no ferrofs superblock found"
	# The magic of a ferrofs superblock at 64 KiB, with no valid checksum.
	printf 'FERROFS\0' | dd of="$disk" bs=1 seek=$((65536 + 8)) conv=notrunc,fsync status=none
	expect_mount_failure "damaged superblock" EUCLEAN "ferrofs: $(basename "$disk"): superblock at byte 65536 is damaged (superblock checksum mismatch), and no backup copy is valid"
	# A superblock with a valid header (magic, format version, CRC-32C computed
	# independently here) whose fields say nothing sensible: no device id, count or
	# generation.
	plant_superblock_header() { # VERSION
		python3 -c '
import struct, sys
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
block = bytearray(4096)
block[8:16] = b"FERROFS\0"
block[16:20] = struct.pack("<I", int(sys.argv[2]))
block[408:416] = struct.pack("<Q", 65536)  # the copy records its own offset
block[0:4] = struct.pack("<I", crc32c(block[4:]))
with open(sys.argv[1], "r+b") as dev:
    dev.seek(65536)
    dev.write(block)
' "$disk" "$1" && sync
	}
	# Format version 1 (before tree roots carried their generation and level).
	plant_superblock_header 1
	expect_mount_failure "format version 1" EOPNOTSUPP "ferrofs: $(basename "$disk"): format version 1 is not supported"
	plant_superblock_header 2
	expect_mount_failure "superblock with empty fields" EUCLEAN "ferrofs: $(basename "$disk"): cannot mount: corrupt metadata in block 65536: superblock has a zero device id, device count or generation"
else
	for i in 1 2 3 4 5 6 7 8; do skip "mount of a device without ferrofs" "no scratch disk in FERROFS_DISKS"; done
fi
rmdir "$mnt"

# 12-13: unload again.
if out="$(rmmod ferrofs 2>&1)"; then ok "rmmod succeeds"; else not_ok "rmmod succeeds"; diag <<<"$out"; fi
check "/proc/filesystems no longer lists ferrofs" bash -c '! grep -qw ferrofs /proc/filesystems'

# 14: nothing went wrong in the kernel meanwhile.
bad="$(log_since_mark | grep -E 'BUG:|WARNING:|Oops|Kernel panic|general protection fault|Call Trace:' || true)"
if [ -z "$bad" ]; then ok "kernel log clean"; else not_ok "kernel log clean"; diag <<<"$bad"; fi

# Leave the module as the runner had it.
[ "$was_loaded" = 0 ] || loaded || insmod "$ko" 2>/dev/null || true

[ "$n" = "$ntests" ] || { echo "# planned $ntests tests, ran $n"; exit $KSFT_FAIL; }
[ "$failed" = 0 ] && exit $KSFT_PASS || exit $KSFT_FAIL

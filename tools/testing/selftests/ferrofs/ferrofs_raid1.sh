#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# raid1 over two and three devices: a file tree written with every device present reads
# back whole from each device alone (two devices) or with any one missing (three), mounted
# degraded; fsck finds every copy of every block good.

ntests=11
. "$(dirname "$0")/lib.sh"
begin_test 3
list="$(mktemp)"

# verify_degraded DESCRIPTION DEVICE...: a read-only degraded mount of the devices reads the
# whole tree (read-only: a degraded mount that wrote would leave the missing mirror stale).
verify_degraded() {
	local desc="$1"; shift
	if mount_ferrofs ro,degraded "$@"; then
		check "$desc" verify_tree "$mnt/tree" "$list"
		umount "$mnt"
	else
		not_ok "$desc"; log_since_mark | tail -n 3 | diag
	fi
}

# Two devices.
"$mkfs" -f -d raid1 -m raid1 "$d0" "$d1" >/dev/null
check "raid1 over two devices: mount" mount_ferrofs "$d0" "$d1"
make_tree "$mnt/tree" "$list" 2
check "raid1 over two devices: tree written" verify_tree "$mnt/tree" "$list"
umount "$mnt"
check "raid1 over two devices: fsck clean" fsck_clean "$d0" "$d1"
verify_degraded "raid1 over two devices: the first alone reads the tree" "$d0"
verify_degraded "raid1 over two devices: the second alone reads the tree" "$d1"

# Three devices, each one missing in turn.
"$mkfs" -f -d raid1 -m raid1 "$d0" "$d1" "$d2" >/dev/null
check "raid1 over three devices: mount" mount_ferrofs "$d0" "$d1" "$d2"
make_tree "$mnt/tree" "$list" 3
umount "$mnt"
check "raid1 over three devices: fsck clean" fsck_clean "$d0" "$d1" "$d2"
verify_degraded "raid1 over three devices: the first missing" "$d1" "$d2"
verify_degraded "raid1 over three devices: the second missing" "$d0" "$d2"
verify_degraded "raid1 over three devices: the third missing" "$d0" "$d1"
check_log_clean
rm -f "$list"
tap_end

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Data integrity under load: fio writes with crc32c verification (buffered and mmap), the
# data verified again after a remount; stress-ng's filesystem stressors with several
# workers for a bounded time. Then fsck.
#
# stress-ng's link stressor is left out: it makes thousands of hard links to one file in
# one directory, and ferrofs keeps the names of a file in a directory in one
# back-reference item (about 40 to 60 names; more fail cleanly with EMLINK).

ntests=7
. "$(dirname "$0")/lib.sh"
begin_test 2
secs="${FERROFS_STRESS_SECS:-60}"

"$mkfs" -f -d raid1 -m raid1 "$d0" "$d1" >/dev/null
mount_ferrofs "$d0" "$d1"
fio_job() { # NAME ENGINE [EXTRA...]
	local name="$1" engine="$2"; shift 2
	on_ferrofs "$mnt" || return
	fio --name="$name" --directory="$mnt" --filename="$name.dat" --size=48M --bs=4k \
		--rw=randwrite --ioengine="$engine" --verify=crc32c --verify_fatal=1 \
		--do_verify=1 --randrepeat=1 --end_fsync=1 --output-format=terse "$@"
}
check "fio buffered random writes, verified (crc32c)" fio_job buffered psync --numjobs=1
check "fio mmap random writes, verified (crc32c)" fio_job mmap mmap
umount "$mnt"
mount_ferrofs "$d0" "$d1"
check "fio data verified again after a remount" bash -c "$(declare -f on_ferrofs fio_job); mnt=$mnt; fio_job buffered psync --verify_only && fio_job mmap mmap --verify_only"
stress() { on_ferrofs "$mnt" && stress-ng "$@"; }
check "stress-ng filesystem stressors, ${secs}s" stress --temp-path "$mnt" --timeout "${secs}s" \
	--hdd 2 --hdd-bytes 16M --dir 2 --dentry 2 --symlink 2 --rename 2 \
	--fallocate 2 --fallocate-bytes 16M --seek 2 --seek-size 16M --iomix 1 --iomix-bytes 16M \
	--metrics-brief --verify
umount "$mnt"
check "fsck clean after the load" fsck_clean "$d0" "$d1"
mount_ferrofs "$d0" "$d1"
check "nothing left behind by the stressors" bash -c "$(declare -f on_ferrofs); on_ferrofs '$mnt' && [ -z \"\$(find '$mnt' -mindepth 1 -not -name '*.dat')\" ] || find '$mnt' | head"
umount "$mnt"
check_log_clean
tap_end

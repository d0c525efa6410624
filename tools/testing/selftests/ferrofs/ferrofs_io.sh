#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Data integrity under load: fio writes with crc32c verification (buffered and mmap), the
# data verified again after a remount; stress-ng's filesystem stressors with several
# workers for a bounded time; cgroup writeback. Then fsck.
#
# stress-ng's link stressor is left out: it makes thousands of hard links to one file in
# one directory, and ferrofs keeps the names of a file in a directory in one
# back-reference item (about 40 to 60 names; more fail cleanly with EMLINK).

ntests=8
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
# Cgroup writeback: data a cgroup dirtied, written back later from outside it (sync), is
# charged to that cgroup on each device of the mirror (its io.stat), as on btrfs and ext4.
cgroup_writeback() {
	local cg=/sys/fs/cgroup group dev majmin wbytes
	on_ferrofs "$mnt" || return
	group="$cg/ferrofs-writeback"
	[ "$(stat -f -c %T "$cg")" = cgroup2fs ] || mount -t cgroup2 none "$cg" || return
	echo "+memory +io" >"$cg/cgroup.subtree_control" || return
	mkdir "$group" || return
	bash -c "echo \$\$ >'$group/cgroup.procs' && exec xfs_io -f -c 'pwrite -q 0 16m' '$mnt/cgwb.dat'" || return
	sync
	for dev in "$d0" "$d1"; do
		majmin="$((0x$(stat -L -c %t "$dev"))):$((0x$(stat -L -c %T "$dev")))"
		wbytes="$(awk -v d="$majmin" '$1 == d { for (i = 2; i <= NF; i++)
			if ($i ~ /^wbytes=/) print substr($i, 8) }' "$group/io.stat")"
		if [ "${wbytes:-0}" -lt $((15 << 20)) ]; then
			echo "$dev ($majmin): ${wbytes:-0} bytes charged to the cgroup that dirtied 16 MiB"
			cat "$group/io.stat"
			return 1
		fi
	done
	rmdir "$group" && rm "$mnt/cgwb.dat"
}
check "cgroup writeback: data written back by sync is charged to the cgroup that dirtied it" cgroup_writeback
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

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Power cuts: dm-flakey starts dropping every write at a chosen point while files are being
# written; the device is then mounted as it was left. fsck must find it clean, and every
# file that was fsynced before the cut must be whole. A file open and unlinked at the cut
# is freed by the next mount. FS_IOC_SHUTDOWN, the power cut in software xfstests uses, keeps
# what was fsynced (or, with the default flag, everything) and writes nothing after it.

ntests=29
. "$(dirname "$0")/lib.sh"
begin_test 1
dm=ferrofs-powercut
sectors="$(blockdev --getsz "$d0")"
work="$(mktemp -d /tmp/ferrofs-pc.XXXXXX)"

flakey() { # MODE: "up" passes every I/O, "cut" drops every write from now on
	local table="0 $sectors flakey $d0 0 86400 0"
	[ "$1" = cut ] && table="0 $sectors flakey $d0 0 0 86400 1 drop_writes"
	# --nolockfs: a plain suspend freezes the filesystem first, which commits everything
	# and would hide a commit missing from fsync.
	dmsetup suspend --nolockfs "$dm" && dmsetup load "$dm" --table "$table" && dmsetup resume "$dm"
}

write_file() { # PATH SEED SIZE [sync]: random contents; records the checksum when synced
	python3 - "$@" <<'PY'
import os, random, sys
path, seed, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = random.Random(seed).randbytes(size)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
if len(sys.argv) > 4:
    os.fsync(fd)
os.close(fd)
PY
	[ $# -gt 3 ] && (cd "$mnt" && sha256sum "${1#$mnt/}") >>"$work/synced"
	true
}

# round NAME MOUNT-OPTIONS FILES-BEFORE UNSYNCED-AFTER: files fsynced one by one, then
# writes in flight (not synced) when the power goes.
round() {
	local name="$1" opts="$2" before="$3" after="$4"
	: >"$work/synced"
	"$mkfs" -f "$d0" >/dev/null
	dmsetup create "$dm" --table "0 $sectors flakey $d0 0 86400 0"
	mount -t ferrofs -o "$opts" "/dev/mapper/$dm" "$mnt"
	mkdir -p "$mnt/dir"
	for i in $(seq 1 "$before"); do
		write_file "$mnt/dir/synced$i" "$i" $(((i * 37171) % 300000 + 1)) sync
	done
	# Unsynced writes, some of them overwriting synced files, then the cut meanwhile.
	for i in $(seq 1 "$after"); do
		write_file "$mnt/dir/late$i" $((i + 1000)) 200000 &
	done
	sleep 0.2
	flakey cut
	wait
	for i in $(seq 1 "$before"); do echo overwrite >"$mnt/dir/synced$i"; done
	sync
	after_cut "$name" "every fsynced file intact" fsynced_intact
}

fsynced_intact() { (cd "$mnt" && sha256sum --quiet -c "$work/synced"); }

# after_cut NAME DESCRIPTION CHECK...: unmounts the cut device and removes it, then checks
# the device left behind: fsck, a mount, CHECK on the mounted filesystem (as test
# DESCRIPTION), fsck again.
after_cut() {
	local name="$1" desc="$2"; shift 2
	umount "$mnt"
	dmsetup remove "$dm"
	# The raw device's cache predates everything written through the flakey device.
	blockdev --flushbufs "$d0"; echo 3 >/proc/sys/vm/drop_caches
	check "$name: fsck clean after the cut" fsck_clean "$d0"
	if mount_ferrofs "$d0"; then
		ok "$name: mounts after the cut"
		check "$name: $desc" "$@"
		umount "$mnt"
		check "$name: fsck clean after the mount" fsck_clean "$d0"
	else
		not_ok "$name: mounts after the cut"; log_since_mark | tail -n 3 | diag
		not_ok "$name: $desc"
		not_ok "$name: fsck clean after the mount"
	fi
}

# Only fsync commits here (the periodic commit is an hour away): a broken fsync loses files.
round "fsync, no periodic commit" commit=3600 20 6
# Periodic commits every second race with the writes and the cut.
round "fsync with commits every second" commit=1 20 6
# Many small synced files, a bigger burst after them.
round "many small files" commit=3600 60 12

# An open unlinked file when the power goes: its blocks are only kept by an orphan item,
# and the next read-write mount must free them.
orphan_round() {
	"$mkfs" -f "$d0" >/dev/null
	dmsetup create "$dm" --table "0 $sectors flakey $d0 0 86400 0"
	mount -t ferrofs -o commit=3600 "/dev/mapper/$dm" "$mnt"
	sync -f "$mnt"
	free_before="$(stat -f -c %a "$mnt")"
	write_file "$mnt/orphan" 7 $((32 << 20))
	exec {held}<"$mnt/orphan"
	rm "$mnt/orphan"
	sync -f "$mnt"
	flakey cut
	# The last close frees the blocks, but that commit never reaches the disk.
	exec {held}<&-
	after_cut "open unlinked file at the cut" "its 32 MiB are free again" orphan_freed
}

orphan_freed() {
	sync -f "$mnt"
	local free_after
	free_after="$(stat -f -c %a "$mnt")"
	[ "$free_after" -ge $((free_before - 256)) ] ||
		{ echo "free 4 KiB blocks: $free_before before the file, $free_after now"; false; }
}
orphan_round

# shutdown_round NAME HOW: files fsynced one by one and one not, then a shutdown (HOW:
# "xfs_io" for xfs_io's, which writes nothing more, or "default" for the ioctl's flag 0,
# which first makes everything durable); every call that reaches the filesystem fails with
# EIO after it (pages still cached can be read), and the next mount finds what it should.
shutdown_round() {
	local name="$1" how="$2"
	: >"$work/synced"
	"$mkfs" -f "$d0" >/dev/null
	mount -t ferrofs -o commit=3600 "$d0" "$mnt"
	mkdir -p "$mnt/dir"
	for i in $(seq 1 10); do
		write_file "$mnt/dir/synced$i" "$i" $(((i * 37171) % 300000 + 1)) sync
	done
	write_file "$mnt/dir/unsynced" 99 100000
	if [ "$how" = default ]; then
		check "$name: FS_IOC_SHUTDOWN" python3 -c '
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, 0x8004587d, struct.pack("I", 0))' "$mnt"
		(cd "$mnt" && sha256sum dir/unsynced) >>"$work/synced"
	else
		check "$name: FS_IOC_SHUTDOWN" xfs_io -x -c shutdown "$mnt"
	fi
	check "$name: calls fail with EIO after it" eio_after_shutdown
	umount "$mnt"
	check "$name: fsck clean after it" fsck_clean "$d0"
	if mount_ferrofs "$d0"; then
		ok "$name: mounts after it"
		check "$name: every fsynced file intact" fsynced_intact
		umount "$mnt"
	else
		not_ok "$name: mounts after it"; log_since_mark | tail -n 3 | diag
		not_ok "$name: every fsynced file intact"
	fi
	check "$name: fsck clean after the mount" fsck_clean "$d0"
}

eio_after_shutdown() {
	local out
	out="$( (echo x >"$mnt/dir/after") 2>&1)" && { echo "a create after the shutdown worked"; return 1; }
	grep -q "Input/output error" <<<"$out" || { echo "a create failed, not with EIO: $out"; return 1; }
	out="$(ls "$mnt/dir/nonexistent" 2>&1)" && { echo "a lookup after the shutdown worked"; return 1; }
	grep -q "Input/output error" <<<"$out" || { echo "a lookup failed, not with EIO: $out"; return 1; }
}
shutdown_round "shutdown, nothing flushed" xfs_io
shutdown_round "shutdown, everything flushed first" default
check_log_clean
rm -rf "$work"
tap_end

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Single operations, each against what a Linux filesystem must do (ferrofs_ops.py): extended
# attributes (long values too), many hard links in one directory, SEEK_DATA/SEEK_HOLE,
# FIEMAP (delayed allocation too), fallocate modes (zero range too), st_blocks before writeback, RENAME_NOREPLACE
# and RENAME_EXCHANGE, RENAME_WHITEOUT, POSIX ACLs, file handles (name_to_handle_at and
# open_by_handle_at), special files, O_TMPFILE with linkat, open unlinked files, telldir and
# seekdir across unlinks, readdir while renaming, idmapped mounts, long symlinks, O_DIRECT reads and writes, read-only remount with
# an unlinked file open; what they left is read again after a remount.

ntests=38
. "$(dirname "$0")/lib.sh"
begin_test 1

ops() { on_ferrofs "$mnt" && python3 "$here/ferrofs_ops.py" "$1" "$mnt"; }

"$mkfs" -f "$d0" >/dev/null
check "mount" mount_ferrofs "$d0"
check "xattrs: user., trusted., security.; XATTR_CREATE/REPLACE; listxattr; limits" ops xattr-setup
check "hard links: 500 names of one file in one directory, some unlinked" ops links-setup
check "SEEK_DATA and SEEK_HOLE, before and after fsync" ops seek
check "FIEMAP: data and preallocated (unwritten) extents, no holes, the last flagged" ops fiemap
check "FIEMAP without sync: dirty data over holes as delayed allocation, placed data as placed; counting mode, partial maps" ops fiemap-delalloc
check "fallocate: default, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE; unsupported modes and sizes past RLIMIT_FSIZE refused" ops fallocate
check "fallocate of 512 MiB at once, and its space back after unlink" ops fallocate-large
check "st_blocks counts dirty data over holes before writeback, once, the same after" ops blocks
check "rename: RENAME_NOREPLACE, RENAME_EXCHANGE of a file and a directory" ops rename-setup
check "mknod: fifo, socket, character and block devices" ops mknod-setup
check "RENAME_WHITEOUT: a 0:0 character device takes the old name" ops whiteout-setup
check "POSIX ACLs: access and default ACLs, mask and chmod, inheritance, umask" ops acl-setup
check "file handles: open_by_handle_at of a file and a directory; ESTALE once removed" ops handle-setup
check "O_TMPFILE: linkat names it; unnamed, its space returns at close" ops tmpfile-setup
check "open unlinked file: usable until the last close, then its space returns" ops unlinked-open
check "readdir: telldir/seekdir positions survive unlinks meanwhile" ops readdir
check "readdir: a reader renaming each entry it reads reads each once and comes to the end" ops readdir-renames
check "idmapped mount: owners mapped both ways, unmapped ids overflow or EOVERFLOW" ops idmap-setup
check "symlink targets of 1 to 4095 bytes" ops symlink-setup
check "O_DIRECT: aligned reads and writes, coherent with the page cache; unaligned ones too" ops direct-setup
check "O_DIRECT reads of data, holes, preallocated space and a partial last block; through a splice" ops direct-sparse
# Read-only remount waits for open unlinked files (their blocks are freed at the last
# close, a change): refused with EBUSY while one is open, done after it is closed.
remount_ro_with_unlinked_open() {
	local fd out
	on_ferrofs "$mnt" && echo data >"$mnt/held" || return
	exec {fd}<"$mnt/held"
	rm "$mnt/held"
	out="$(mount -o remount,ro "$mnt" 2>&1)" && { echo "remount ro succeeded with the file open"; exec {fd}<&-; return 1; }
	exec {fd}<&-
	grep -q "busy" <<<"$out" || { echo "refused, but not busy: $out"; return 1; }
	mount -o remount,ro "$mnt" && mount -o remount,rw "$mnt"
}
check "remount read-only: EBUSY while an unlinked file is open, done after its close" \
	remount_ro_with_unlinked_open
umount "$mnt"
check "fsck clean" fsck_clean "$d0"

check "mount again" mount_ferrofs "$d0"
check "after the remount: xattrs" ops xattr-verify
check "after the remount: the hard links" ops links-verify
check "after the remount: renamed and exchanged names" ops rename-verify
check "after the remount: special files" ops mknod-verify
check "after the remount: the whiteout" ops whiteout-verify
check "after the remount: ACLs" ops acl-verify
check "after the remount (no inode cached): file handles" ops handle-verify
check "after the remount: the linked O_TMPFILE" ops tmpfile-verify
check "after the remount: symlinks" ops symlink-verify
check "after the remount: owners stored through the idmapped mount" ops idmap-verify
check "after the remount: the O_DIRECT file" ops direct-verify
umount "$mnt"
check "fsck clean after the remount" fsck_clean "$d0"
check_log_clean
tap_end

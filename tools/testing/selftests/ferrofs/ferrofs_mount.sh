#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Mounting ferrofs: a file tree survives unmount and a module reload; statfs reports the
# filesystem; mount options are shown in /proc/mounts; read-only mounts refuse changes;
# unknown options, foreign and corrupt images and missing devices are refused with an errno
# and a kernel log line saying why, also when the mount fails late (an unreadable root
# directory), after which the devices are free again; a damaged primary superblock is
# reported by fsck and mounted from a backup copy, which the next commit rewrites; the
# label is read and set through the generic label ioctls; each mount has a backing device
# of its own.

ntests=41
. "$(dirname "$0")/lib.sh"
begin_test 2
name0="$(basename "$d0")"

# expect_refused DESCRIPTION LOG-PATTERN MOUNT-ARGS...: mount fails, the log says why.
expect_refused() {
	local desc="$1" pat="$2" out; shift 2
	if out="$(mount -t ferrofs "$@" "$mnt" 2>&1)"; then
		umount "$mnt"; not_ok "$desc: mount refused"
	else
		ok "$desc: mount refused"
	fi
	if log_since_mark | grep -q -- "$pat"; then ok "$desc: kernel log says why"; else
		not_ok "$desc: kernel log says why"; { echo "$out"; log_since_mark | tail -n 5; } | diag
	fi
}

# 1-4: a tree of files, kept across unmount and across a module reload.
"$mkfs" -f "$d0" >/dev/null
check "mount of a new filesystem" mount_ferrofs "$d0"
list="$(mktemp)"
make_tree "$mnt/tree" "$list" 1
check "tree written and read back" verify_tree "$mnt/tree" "$list"
umount "$mnt"
check "tree intact after unmount and mount" bash -c "$(declare -f mount_ferrofs on_ferrofs verify_tree); mnt=$mnt; mount_ferrofs $d0 && verify_tree $mnt/tree $list"
umount "$mnt"
rmmod ferrofs && insmod "$ko"
check "tree intact after a module reload" bash -c "$(declare -f mount_ferrofs on_ferrofs verify_tree); mnt=$mnt; mount_ferrofs $d0 && verify_tree $mnt/tree $list"

# 5-6: statfs.
fstype="$(stat -f -c %t "$mnt")"
check "statfs type is FERROFS_SUPER_MAGIC" test "$fstype" = 46455252
read -r total free avail <<<"$(stat -f -c '%b %f %a' "$mnt")"
used_kib="$(du -sk "$mnt/tree" | cut -f1)"
# Used is the blocks in use (the tree, and a little metadata), not whole chunks.
check "statfs counts blocks: total > free >= available > 0, used is the tree and its metadata" \
	test "$fstype" = 46455252 -a "$total" -gt "$free" -a "$free" -ge "$avail" -a "$avail" -gt 0 \
	-a $(((total - free) * 4)) -ge "$used_kib" -a $(((total - free) * 4)) -le $((used_kib + 8192))

# 7-13: inode flags through FS_IOC_SETFLAGS (chattr) and FS_IOC_FSSETXATTR, kept across a
# remount, and in statx; statx's creation time.
chattr +i +d "$mnt/tree/hard"
born_after=$(date +%s)
touch "$mnt/born"
born_before=$(date +%s)
sleep 1
echo data >>"$mnt/born"
out="$(echo more 2>&1 >>"$mnt/tree/hard")"
# says OUTPUT PATTERN: on a mounted ferrofs, the command's OUTPUT matched PATTERN.
says() { on_ferrofs "$mnt" && grep -q -- "$2" <<<"$1"; }
check "chattr +i: the file refuses writes (EPERM)" says "$out" "Operation not permitted"
umount "$mnt"
mount_ferrofs "$d0"
flags="$(lsattr "$mnt/tree/hard" | cut -d' ' -f1)"
check "chattr flags kept: lsattr shows i and d ($flags)" says "$flags" 'i.*d'
statx_field() { xfs_io -r -c 'statx -r' "$1" | awk -v f="stat.$2" '$1 == f { print $3 }'; }
attrs="$(statx_field "$mnt/tree/hard" attributes)" mask="$(statx_field "$mnt/tree/hard" attributes_mask)"
# STATX_ATTR_IMMUTABLE 0x10, _APPEND 0x20, _NODUMP 0x40.
check "statx reports them: immutable and nodump set, append clear, all three supported ($attrs, mask $mask)" \
	test "$((${attrs:-0} & 0x70))" -eq $((0x50)) -a "$((${mask:-0} & 0x70))" -eq $((0x70))
btime="$(statx_field "$mnt/born" btime.tv_sec)" mask="$(statx_field "$mnt/born" mask)"
check "statx reports the creation time, kept across a write and a remount ($btime, mask $mask)" \
	test "$((${mask:-0} & 0x800))" -ne 0 -a "${btime:-0}" -ge "$born_after" -a "${btime:-0}" -le "$born_before"
# The same flags through the fsxattr interface (FS_IOC_FSSETXATTR, which xfs_io's chattr
# uses); what only fsxattr can say is refused and changes nothing. xfs_io opens read-only:
# an append-only file cannot be opened for writing without O_APPEND.
xfs_io -r -c "chattr +a" "$mnt/born"
flags="$(lsattr "$mnt/born" | cut -d' ' -f1)"
out="$(echo more 2>&1 >"$mnt/born")"
# appended_only FLAGS OUTPUT: lsattr showed `a`, and the truncating open was refused.
appended_only() { on_ferrofs "$mnt" && [[ "$1" == *a* ]] && grep -q "Operation not permitted" <<<"$2"; }
check "FS_IOC_FSSETXATTR (xfs_io chattr +a): append-only set ($flags), a truncating open refused" \
	appended_only "$flags" "$out"
# fsx_refusals FILE: FS_IOC_FSSETXATTR with a project id, with an extent size hint and with
# an fsxattr-only flag is EOPNOTSUPP each time, and changes nothing. (xfs_io's extsize
# does not ask a filesystem other than XFS.)
fsx_refusals() {
	python3 - "$1" <<'EOF_PY'
import errno, fcntl, os, struct, sys
GET, SET = 0x801C581F, 0x401C5820  # FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR
FSX = struct.Struct("<5I8x")  # xflags, extsize, nextents, projid, cowextsize
fd = os.open(sys.argv[1], os.O_RDONLY)
before = FSX.unpack(fcntl.ioctl(fd, GET, bytes(FSX.size)))
xflags = before[0]
for what, request in (("project id", (xflags, 0, 0, 7, 0)),
                      ("extent size hint", (xflags | 0x800, 65536, 0, 0, 0)),
                      ("FS_XFLAG_NODEFRAG", (xflags | 0x2000, 0, 0, 0, 0))):
    try:
        fcntl.ioctl(fd, SET, FSX.pack(*request))
        sys.exit(f"{what}: accepted")
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            sys.exit(f"{what}: {e}")
after = FSX.unpack(fcntl.ioctl(fd, GET, bytes(FSX.size)))
if after != before:
    sys.exit(f"fsxattr changed: {before} -> {after}")
EOF_PY
}
refused="$(fsx_refusals "$mnt/born" 2>&1)"; refused_rc=$?
xfs_io -r -c "chattr -a" "$mnt/born"
flags="$(lsattr "$mnt/born" | cut -d' ' -f1)"
# refused_fsx RC FLAGS: the refusals went as expected, and `a` is clear again.
refused_fsx() { on_ferrofs "$mnt" && [ "$1" = 0 ] && [[ "$2" != *a* ]]; }
check "FS_IOC_FSSETXATTR: project id, extent size hint, fsxattr-only flag EOPNOTSUPP, nothing changed; chattr -a clears (${refused:-refused} $flags)" \
	refused_fsx "$refused_rc" "$flags"
chattr -i -d "$mnt/tree/hard"
rm "$mnt/born"
umount "$mnt"
check "fsck clean after the tree" fsck_clean "$d0"

# 14-17: a byte of the primary superblock copy flipped (not its magic): fsck -n names it
# and exits 4; the mount takes the newest valid backup and says so; a commit rewrites it.
printf '\x5a' | dd of="$d0" bs=1 seek=$((65536 + 300)) conv=notrunc,fsync status=none
out="$("$fsck" -n "$d0" 2>&1)"; rc=$?
check "fsck -n reports the damaged primary superblock (exit $rc)" \
	bash -c "[ $rc = 4 ] && grep -q 'block 65536 (device 1): superblock checksum mismatch' <<<'$out'"
check "mount with a damaged primary superblock uses a backup copy" mount_ferrofs "$d0"
check "kernel log warns of the damaged copy" bash -c \
	"dmesg | grep -q 'ferrofs: $name0: superblock at byte 65536 is damaged (superblock checksum mismatch); mounted from the newest valid copy'"
touch "$mnt/after-repair" && sync
check "tree intact, and fsck clean once a commit rewrote the copy" bash -c \
	"$(declare -f on_ferrofs verify_tree fsck_clean); fsck=$fsck; verify_tree $mnt/tree $list && umount $mnt && fsck_clean $d0"
! mountpoint -q "$mnt" || umount "$mnt"

# 18-20: options shown; read-only mounts.
mount_ferrofs commit=5,skip_balance "$d0"
opts="$(awk -v m="$mnt" '$2 == m {print $4}' /proc/mounts)"
check "/proc/mounts shows commit=5 and skip_balance" bash -c "grep -q 'commit=5' <<<'$opts' && grep -q 'skip_balance' <<<'$opts'"
umount "$mnt"
mount_ferrofs ro "$d0"
out="$(touch "$mnt/new" 2>&1)"
check "read-only mount refuses a new file (EROFS)" says "$out" "Read-only file system"
check "read-only mount still reads the tree" verify_tree "$mnt/tree" "$list"
umount "$mnt"

# 21-26: the label, through the generic FS_IOC_GETFSLABEL and FS_IOC_SETFSLABEL ioctls.
ctl="$root/tools/bin/ferroctl"
"$mkfs" -f -L first "$d0" >/dev/null
mount_ferrofs "$d0"
check "ferroctl label reads the label mkfs wrote" says "$("$ctl" label "$mnt" 2>&1)" '^first$'
"$ctl" label "$mnt" second
check "xfs_io -c label reads the label ferroctl set" says "$(xfs_io -c label "$mnt" 2>&1)" 'label = "second"'
out="$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$ctl" label "$mnt" third 2>&1)"
check "setting the label needs CAP_SYS_ADMIN (EPERM)" says "$out" "Operation not permitted"
# FS_IOC_SETFSLABEL (0x41009432) with 256 bytes and no NUL among them.
out="$(python3 -c 'import fcntl, os, sys; fcntl.ioctl(os.open(sys.argv[1], os.O_RDONLY), 0x41009432, b"a" * 256)' "$mnt" 2>&1)"
check "a label filling the 256-byte buffer without a NUL is refused (EINVAL)" says "$out" "Invalid argument"
umount "$mnt"
check "the new label is in the superblock after unmount" bash -c \
	"'$ctl' dump '$d0' | grep -q \"label 'second'\""
mount_ferrofs ro "$d0"
out="$("$ctl" label "$mnt" fourth 2>&1)"
check "a read-only mount refuses a new label (EROFS)" says "$out" "Read-only file system"
umount "$mnt"

# 27-34: refusals.
expect_refused "unknown option" 'ferrofs: unknown mount option "bogus"' -o bogus "$d0"
expect_refused "commit=0" 'ferrofs: mount option "commit" needs a number of seconds' -o commit=0 "$d0"
mkfs.ext4 -q -F "$d0" >/dev/null 2>&1
expect_refused "ext4 image" "ferrofs: $name0: no ferrofs superblock found" "$d0"
# A corrupt tree block: single metadata, so no mirror can stand in for it.
"$mkfs" -f -m single "$d0" >/dev/null
dump="$("$root/tools/bin/ferroctl" dump "$d0")"
fs_root="$(awk '/^tree 5 \(fs\) root/ {print $NF}' <<<"$dump")"
read -r meta_logical meta_physical <<<"$(awk '/^chunk .* metadata / {split($0, a, "physical: "); split(a[2], b, " "); print $2, b[1]}' <<<"$dump")"
offset=$((meta_physical + fs_root - meta_logical + 100))
printf '\xff' | dd of="$d0" bs=1 seek="$offset" conv=notrunc,fsync status=none
expect_refused "corrupt fs tree root" "ferrofs: $name0: cannot mount: corrupt metadata in block $fs_root" "$d0"

# 35-36: a device missing, without `degraded`.
"$mkfs" -f -d raid1 -m raid1 "$d0" "$d1" >/dev/null
expect_refused "raid1 with a device missing" "ferrofs: $name0: cannot mount: devices missing: mount with degraded to continue" "$d0"

# 37-39: a mount that fails after the filesystem's state is set up (its root directory
# unreadable): everything is torn down before the devices are released, the kernel log
# stays clean and both devices mount again at once. The image: metadata single (one copy
# to change), the root inode without links and with an orphan item, so that the mount
# frees it as it frees every orphan, after the engine opened.
"$mkfs" -f -d single -m single "$d0" "$d1" >/dev/null
dump="$("$root/tools/bin/ferroctl" dump "$d0" "$d1")"
fs_root="$(awk '/^tree 5 \(fs\) root/ {print $NF}' <<<"$dump")"
read -r meta_logical meta_devid meta_physical <<<"$(awk '/^chunk .* metadata / {
	split($0, a, "devid: "); split(a[2], b, ","); split($0, c, "physical: "); split(c[2], d, " ")
	print $2, b[1], d[1]}' <<<"$dump")"
meta_dev="$d0"; [ "$meta_devid" = 1 ] || meta_dev="$d1"
python3 - "$meta_dev" $((meta_physical + fs_root - meta_logical)) <<'EOF_PY'
import os, struct, sys
path, offset = sys.argv[1], int(sys.argv[2])
ROOT_INO, INODE, ORPHAN, ORPHAN_OBJECTID = 256, 1, 48, 2**64 - 6
ITEM = struct.Struct("<QBQII")  # key (objectid, kind, offset), data offset, data size
def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
with open(path, "r+b") as dev:
    dev.seek(offset)
    block = bytearray(dev.read(4096))
    count, level = struct.unpack_from("<I", block, 48)[0], block[52]
    assert level == 0, "the fs tree root is not a leaf"
    items = [ITEM.unpack_from(block, 64 + i * ITEM.size) for i in range(count)]
    root = next(i for i in items if i[:3] == (ROOT_INO, INODE, 0))
    struct.pack_into("<I", block, root[3] + 12, 0)  # nlink
    items = sorted(items + [(ORPHAN_OBJECTID, ORPHAN, ROOT_INO, 4096, 0)])
    assert 64 + len(items) * ITEM.size <= min(i[3] for i in items)
    for n, item in enumerate(items):
        ITEM.pack_into(block, 64 + n * ITEM.size, *item)
    struct.pack_into("<I", block, 48, len(items))
    struct.pack_into("<I", block, 0, crc32c(block[4:]))
    dev.seek(offset)
    dev.write(block)
    dev.flush()
    os.fsync(dev.fileno())
EOF_PY
expect_refused "root directory unreadable" "ferrofs: $name0: cannot mount: cannot read the root directory" \
	-o device="$d1" "$d0"
"$mkfs" -f -d raid1 -m raid1 "$d0" "$d1" >/dev/null
check "after that failed mount both devices mount again, take a file and fsck clean" bash -c \
	"$(declare -f mount_ferrofs on_ferrofs fsck_clean); mnt=$mnt fsck=$fsck
	mount_ferrofs $d0 $d1 && on_ferrofs $mnt && echo data >$mnt/file && umount $mnt && fsck_clean $d0 $d1"
! mountpoint -q "$mnt" || umount "$mnt"

# 40: one backing device per mount (as btrfs has), not its first device's: its readahead
# window is its devices' together and at least 4 MiB, so reads stay in flight while the
# window before them is checked.
"$mkfs" -f -d raid1 -m raid1 "$d0" "$d1" >/dev/null
mount_ferrofs "$d0" "$d1"
check "a backing device of its own (/sys/class/bdi/ferrofs-*), readahead window at least 4 MiB" bash -c \
	"shopt -s nullglob; bdis=(/sys/class/bdi/ferrofs-*); [ \${#bdis[@]} -eq 1 ] &&
	[ \"\$(cat \${bdis[0]}/read_ahead_kb)\" -ge 4096 ]"
umount "$mnt"

# 41, last: nothing went wrong in the kernel meanwhile.
check_log_clean
rm -f "$list"
tap_end

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Checks of single filesystem operations, run by ferrofs_ops.sh on a mounted ferrofs:
#
#   ferrofs_ops.py CHECK DIR
#
# Each CHECK exits 0 when the filesystem behaved as a Linux filesystem must, 1 with the
# reason otherwise. "*-setup" checks leave files that the matching "*-verify" check reads
# after a remount.

import ctypes
import errno
import fcntl
import mmap
import os
import resource
import signal
import stat
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)

AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
FALLOC_FL_COLLAPSE_RANGE = 8
FALLOC_FL_ZERO_RANGE = 0x10
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 1
FIEMAP_EXTENT_LAST = 1
FIEMAP_EXTENT_UNKNOWN = 2
FIEMAP_EXTENT_DELALLOC = 4
FIEMAP_EXTENT_UNWRITTEN = 0x800
KIB = 1024
MIB = 1024 * KIB


class Failed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failed(what)


def expect_errno(want, what, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        expect(e.errno == want, f"{what}: {errno.errorcode.get(e.errno, e.errno)}, "
               f"expected {errno.errorcode[want]}")
        return
    raise Failed(f"{what}: succeeded, expected {errno.errorcode[want]}")


def call(fn, *args):
    """A libc call that returns -1 and sets errno on failure, as an OSError."""
    rc = fn(*args)
    if rc == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def renameat2(old, new, flags):
    call(libc.renameat2, AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new),
         ctypes.c_uint(flags))


def link_fd(fd, new):
    """linkat(2) of an open file through /proc/self/fd, following that magic link
    (os.link would call link(2), which links the /proc entry itself: EXDEV)."""
    call(libc.linkat, AT_FDCWD, os.fsencode(f"/proc/self/fd/{fd}"), AT_FDCWD,
         os.fsencode(new), AT_SYMLINK_FOLLOW)


def fallocate(fd, mode, offset, length):
    call(libc.fallocate, fd, mode, ctypes.c_long(offset), ctypes.c_long(length))


def pattern(seed, size):
    """Recognisable contents: every 8 bytes hold the seed and their offset."""
    return b"".join(struct.pack("<HHI", seed, 0xFE55, i) for i in range(0, size, 8))[:size]


def write_at(path, offset, data, size=None, flags=os.O_WRONLY | os.O_CREAT):
    fd = os.open(path, flags, 0o644)
    try:
        os.pwrite(fd, data, offset)
        if size is not None:
            os.ftruncate(fd, size)
    finally:
        os.close(fd)


def free_bytes(top):
    st = os.statvfs(top)
    return st.f_bavail * st.f_frsize


def settle(top):
    """Commit, so blocks freed by the last changes count as free again."""
    fd = os.open(top, os.O_RDONLY)
    try:
        os.syncfs(fd) if hasattr(os, "syncfs") else call(libc.syncfs, fd)
    finally:
        os.close(fd)


# Extended attributes in the user., trusted. and security. namespaces.
XATTRS = {
    "user.colour": b"green",  # first set to "blue", then replaced
    "user.empty": b"",
    "user.large": pattern(7, 700),
    # Longer than an item holds: spilled to pieces.
    "user.block": pattern(8, 3840),
    "user.max": pattern(9, 65536),
    "trusted.owner": b"\x00\x01binary\xff",
    "security.label": b"system_u:object_r:test_t",
}


def xattr_setup(top):
    path = os.path.join(top, "xattrs")
    write_at(path, 0, b"data")
    os.setxattr(path, "user.colour", b"blue", os.XATTR_CREATE)
    for name, value in XATTRS.items():
        if name != "user.colour":
            os.setxattr(path, name, value)
    os.setxattr(path, "user.gone", b"soon")
    os.removexattr(path, "user.gone")
    expect_errno(errno.ENODATA, "getxattr of a removed name", os.getxattr, path, "user.gone")
    expect_errno(errno.ENODATA, "removexattr of a missing name", os.removexattr, path,
                 "user.none")
    expect_errno(errno.EEXIST, "XATTR_CREATE of an existing name", os.setxattr, path,
                 "user.colour", b"red", os.XATTR_CREATE)
    expect_errno(errno.ENODATA, "XATTR_REPLACE of a missing name", os.setxattr, path,
                 "user.none", b"x", os.XATTR_REPLACE)
    expect_errno(errno.E2BIG, "a value over XATTR_SIZE_MAX", os.setxattr, path,
                 "user.toolong", b"x" * 65537)
    # A long value replaced by a short one and back (its pieces go and come).
    os.setxattr(path, "user.block", b"short", os.XATTR_REPLACE)
    os.setxattr(path, "user.block", XATTRS["user.block"], os.XATTR_REPLACE)
    expect_errno(errno.EOPNOTSUPP, "an unknown namespace", os.setxattr, path, "bogus.name",
                 b"x")
    os.setxattr(path, "user.colour", XATTRS["user.colour"], os.XATTR_REPLACE)
    # A buffer too small for the value is ERANGE.
    buf = ctypes.create_string_buffer(2)
    rc = libc.getxattr(os.fsencode(path), b"user.colour", buf, ctypes.c_size_t(2))
    expect(rc == -1 and ctypes.get_errno() == errno.ERANGE,
           f"getxattr into a 2-byte buffer: {rc}, errno {ctypes.get_errno()}")
    xattr_verify(top)
    d = os.path.join(top, "xattr-dir")
    os.mkdir(d)
    os.setxattr(d, "user.on-dir", b"yes")
    os.symlink("xattrs", os.path.join(top, "xattr-link"))


LINKS = 500


def links_setup(top):
    """Many names of one file in one directory (past what one back-reference item holds,
    as xfstests generic/040 makes), then a few of them unlinked."""
    d = os.path.join(top, "links")
    os.mkdir(d)
    first = os.path.join(d, "l0")
    write_at(first, 0, b"linked")
    for i in range(1, LINKS):
        os.link(first, os.path.join(d, f"l{i}"))
    for i in range(0, LINKS, 50):
        os.unlink(os.path.join(d, f"l{i}"))
    links_verify(top)


def links_verify(top):
    d = os.path.join(top, "links")
    names = [f"l{i}" for i in range(LINKS) if i % 50 != 0]
    expect(sorted(os.listdir(d)) == sorted(names), "the names of the links differ")
    ino = os.stat(os.path.join(d, names[0])).st_ino
    for n in names:
        st = os.stat(os.path.join(d, n))
        expect(st.st_ino == ino, f"{n} names another inode")
    expect(st.st_nlink == len(names), f"link count {st.st_nlink}, not {len(names)}")


def xattr_verify(top):
    path = os.path.join(top, "xattrs")
    names = set(os.listxattr(path))
    expect(names >= set(XATTRS), f"listxattr {sorted(names)} lacks some of {sorted(XATTRS)}")
    expect("user.gone" not in names, "listxattr still has a removed name")
    for name, value in XATTRS.items():
        got = os.getxattr(path, name)
        expect(got == value, f"{name}: {got[:40]!r} instead of {value[:40]!r}")
    d = os.path.join(top, "xattr-dir")
    if os.path.exists(d):
        expect(os.getxattr(d, "user.on-dir") == b"yes", "xattr of a directory")
        # user. attributes are for regular files and directories only.
        link = os.path.join(top, "xattr-link")
        expect_errno(errno.EPERM, "user. xattr on a symlink",
                     lambda: os.setxattr(link, "user.x", b"1", follow_symlinks=False))


def seek_layout(path):
    # data [0, 4K), hole [4K, 1M), data [1M, 1M+8K), hole to the 2M end.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, pattern(1, 4 * KIB), 0)
    os.pwrite(fd, pattern(2, 8 * KIB), MIB)
    os.ftruncate(fd, 2 * MIB)
    return fd


def seek_expect(fd, when):
    cases = [
        (0, os.SEEK_DATA, 0), (0, os.SEEK_HOLE, 4 * KIB),
        (4 * KIB, os.SEEK_DATA, MIB), (5000, os.SEEK_HOLE, 5000),
        (MIB + 100, os.SEEK_DATA, MIB + 100), (MIB, os.SEEK_HOLE, MIB + 8 * KIB),
        (MIB + 8 * KIB, os.SEEK_HOLE, MIB + 8 * KIB),
    ]
    for off, whence, want in cases:
        name = "SEEK_DATA" if whence == os.SEEK_DATA else "SEEK_HOLE"
        got = os.lseek(fd, off, whence)
        expect(got == want, f"{when}: {name} from {off} gave {got}, expected {want}")
    expect_errno(errno.ENXIO, f"{when}: SEEK_DATA in the trailing hole", os.lseek, fd,
                 MIB + 8 * KIB, os.SEEK_DATA)
    expect_errno(errno.ENXIO, f"{when}: SEEK_HOLE at the end", os.lseek, fd, 2 * MIB,
                 os.SEEK_HOLE)


def seek(top):
    fd = seek_layout(os.path.join(top, "seek"))
    try:
        # Dirty pages count as data before they reach the disk, and after.
        seek_expect(fd, "before fsync")
        os.fsync(fd)
        seek_expect(fd, "after fsync")
    finally:
        os.close(fd)


def fiemap_extents(fd, flags=FIEMAP_FLAG_SYNC, count=32, start=0):
    """FIEMAP from `start` to the end, room for `count` extents (0: count them only)."""
    header = struct.pack("<QQIIII", start, 2**64 - 1 - start, flags, 0, count, 0)
    buf = bytearray(header + bytes(56 * count))
    fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
    mapped = struct.unpack_from("<I", buf, 20)[0]
    if count == 0:
        return mapped
    out = []
    for i in range(mapped):
        logical, physical, length, _, _, flags = struct.unpack_from("<QQQQQI", buf, 32 + 56 * i)
        out.append((logical, physical, length, flags))
    return out


def fiemap(top):
    path = os.path.join(top, "fiemap")
    fd = seek_layout(path)
    try:
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 3 * MIB, 64 * KIB)
        ext = fiemap_extents(fd)
    finally:
        os.close(fd)
    expect(ext, "FIEMAP mapped nothing")
    def covered(lo, hi, unwritten):
        """Every 4 KiB block of [lo, hi) is in an extent of the right kind."""
        return all(any(l <= b and b + 4 * KIB <= l + n
                       and bool(f & FIEMAP_EXTENT_UNWRITTEN) == unwritten
                       for l, _, n, f in ext) for b in range(lo, hi, 4 * KIB))

    expect(covered(0, 4 * KIB, False), f"data at 0 not mapped: {ext}")
    expect(covered(MIB, MIB + 8 * KIB, False), f"data at 1M not mapped: {ext}")
    expect(covered(3 * MIB, 3 * MIB + 64 * KIB, True),
           f"preallocated range not mapped as unwritten: {ext}")
    expect(not any(l < MIB and l + n > 4 * KIB for l, _, n, _ in ext),
           f"the hole [4K, 1M) is mapped: {ext}")
    expect(all(p > 0 for _, p, _, _ in ext), f"an extent without an address: {ext}")
    expect(ext[-1][3] & FIEMAP_EXTENT_LAST, f"no FIEMAP_EXTENT_LAST on the last extent: {ext}")
    expect(sum(1 for e in ext if e[3] & FIEMAP_EXTENT_LAST) == 1, f"LAST twice: {ext}")


def fiemap_delalloc(top):
    """Without FIEMAP_FLAG_SYNC, dirty data over holes is delayed allocation (no address,
    FIEMAP_EXTENT_DELALLOC and _UNKNOWN) and placed data keeps its extent, as btrfs, XFS
    and ext4 report them (xfstests' delalloc probe); with it, all is placed. Writeback
    may place some dirty blocks meanwhile: each block must then be in a placed extent."""
    path = os.path.join(top, "fiemap-delalloc")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.pwrite(fd, pattern(7, 64 * KIB), 0)
        os.fsync(fd)
        os.pwrite(fd, pattern(8, 4 * KIB), 0)
        os.pwrite(fd, pattern(9, 16 * KIB), MIB)
        # 100 dirty blocks, each between holes: more than the engine is asked for at once.
        for i in range(100):
            os.pwrite(fd, pattern(10 + i, 4 * KIB), 2 * MIB + i * 8 * KIB)
        ext = fiemap_extents(fd, flags=0, count=256)
        counted = fiemap_extents(fd, flags=0, count=0)
        # From the middle, room for 5: the next ones, without the last flag.
        part = fiemap_extents(fd, flags=0, count=5, start=2 * MIB + 50 * 8 * KIB)
    finally:
        os.close(fd)
    delayed = [e for e in ext if e[3] & FIEMAP_EXTENT_DELALLOC]
    placed = [e for e in ext if not e[3] & FIEMAP_EXTENT_DELALLOC]
    expect(delayed, f"no delayed allocation reported for dirty data over holes: {ext}")
    expect(all(p == 0 and f & FIEMAP_EXTENT_UNKNOWN for _, p, _, f in delayed),
           f"a delayed extent with an address, or without FIEMAP_EXTENT_UNKNOWN: {ext}")
    expect(all(p > 0 for _, p, _, _ in placed), f"a placed extent without an address: {ext}")
    expect(not any(l < 64 * KIB for l, _, _, _ in delayed),
           f"placed data (rewritten, not yet written back) reported as delayed: {ext}")
    expect(all(a[0] + a[2] <= b[0] for a, b in zip(ext, ext[1:])),
           f"extents out of order or overlapping: {ext}")
    blocks = [b for lo, n in [(0, 64 * KIB), (MIB, 16 * KIB)] for b in range(lo, lo + n, 4 * KIB)]
    blocks += [2 * MIB + i * 8 * KIB for i in range(100)]
    for b in blocks:
        expect(sum(1 for l, _, n, _ in ext if l <= b < l + n) == 1,
               f"block at {b} not in exactly one extent: {ext}")
    expect(not any(l < b + 8 * KIB and l + n > b + 4 * KIB
                   for b in range(2 * MIB, 2 * MIB + 100 * 8 * KIB, 8 * KIB)
                   for l, _, n, _ in ext), f"a hole between the dirty blocks is mapped: {ext}")
    expect(ext[-1][3] & FIEMAP_EXTENT_LAST and
           sum(1 for e in ext if e[3] & FIEMAP_EXTENT_LAST) == 1,
           f"FIEMAP_EXTENT_LAST not once, on the last extent: {ext}")
    expect(counted == len(ext), f"counting mode says {counted} extents, the map has {len(ext)}")
    expect(part == [e for e in ext if e[0] + e[2] > 2 * MIB + 50 * 8 * KIB][:5],
           f"a partial map from the middle differs from the whole one: {part}")
    expect(not any(e[3] & FIEMAP_EXTENT_LAST for e in part), f"LAST in a partial map: {part}")
    fd = os.open(path, os.O_RDONLY)
    try:
        synced = fiemap_extents(fd, count=256)
    finally:
        os.close(fd)
    expect(not any(f & FIEMAP_EXTENT_DELALLOC for _, _, _, f in synced),
           f"delayed allocation left after FIEMAP_FLAG_SYNC: {synced}")
    for b in blocks:
        expect(sum(1 for l, _, n, _ in synced if l <= b < l + n) == 1,
               f"after FIEMAP_FLAG_SYNC, block at {b} not in exactly one extent: {synced}")


SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442  # x86_64
OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_IDMAP = 0x100000
MOVE_MOUNT_F_EMPTY_PATH = 4
CLONE_NEWUSER = 0x10000000
# The idmapped mount shows on-disk ids 0-999 as 10000-10999 (and stores them back).
IDMAP_BASE, IDMAP_COUNT = 10000, 1000


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def user_namespace(mapping):
    """An fd of a new user namespace whose uid and gid maps are `mapping`."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(done_w)
        ok = libc.unshare(CLONE_NEWUSER) == 0
        os.write(ready_w, b"1" if ok else b"0")
        os.read(done_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        expect(os.read(ready_r, 1) == b"1", "unshare(CLONE_NEWUSER) failed")
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(mapping)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def idmapped_mount(source, target):
    """Mounts `source` again at `target` through an idmapping (mount_setattr)."""
    ns = user_namespace(f"0 {IDMAP_BASE} {IDMAP_COUNT}\n")
    syscall = libc.syscall
    try:
        tree = call(syscall, SYS_OPEN_TREE, AT_FDCWD, os.fsencode(source),
                    ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC))
        try:
            attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, ns)
            call(syscall, SYS_MOUNT_SETATTR, tree, b"", ctypes.c_uint(AT_EMPTY_PATH),
                 ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
            call(syscall, SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, os.fsencode(target),
                 ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))
        finally:
            os.close(tree)
    finally:
        os.close(ns)


def as_user(uid, fn):
    """Runs `fn` in a child process with uid and gid `uid`; its exception, if any, here."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            fn()
            msg = b""
        except BaseException as e:  # noqa: B036 (reported to the parent)
            msg = repr(e).encode() or b"?"
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    msg = os.read(r, 4096)
    os.close(r)
    os.waitpid(pid, 0)
    expect(not msg, f"as uid {uid}: {msg.decode(errors='replace')}")


def idmap_setup(top):
    """An idmapped mount of ferrofs (FS_ALLOW_IDMAP): owners show through the mapping,
    what a mapped user creates is stored under the on-disk id, chown through the mount
    stores the on-disk id, and ids outside the mapping show as the overflow id."""
    base = os.path.join(top, "idmap")
    view = os.path.join(top, "idmap-view")
    os.mkdir(base)
    os.mkdir(view)
    os.mkdir(os.path.join(base, "dir"), 0o755)
    write_at(os.path.join(base, "file"), 0, b"root's")
    write_at(os.path.join(base, "foreign"), 0, b"unmapped")
    os.chown(os.path.join(base, "foreign"), 5000, 5000)
    idmapped_mount(base, view)
    try:
        st = os.stat(os.path.join(view, "file"))
        expect((st.st_uid, st.st_gid) == (IDMAP_BASE, IDMAP_BASE),
               f"on-disk 0:0 shows as {st.st_uid}:{st.st_gid} through the idmapped mount")
        st = os.stat(os.path.join(view, "foreign"))
        expect((st.st_uid, st.st_gid) == (65534, 65534),
               f"unmapped 5000:5000 shows as {st.st_uid}:{st.st_gid}, not the overflow id")
        # The mapped owner of `dir` (10000, on disk 0) creates in it.
        as_user(IDMAP_BASE, lambda: write_at(os.path.join(view, "dir", "made"), 0, b"x"))
        as_user(IDMAP_BASE, lambda: os.mkdir(os.path.join(view, "dir", "subdir")))
        os.chown(os.path.join(view, "file"), IDMAP_BASE + 5, IDMAP_BASE + 7)
        # An id outside the mapping cannot be stored through it.
        expect_errno(errno.EOVERFLOW, "chown to an unmapped id through the idmapped mount",
                     os.chown, os.path.join(view, "file"), 20000, 20000)
        st = os.stat(os.path.join(view, "dir", "made"))
        expect((st.st_uid, st.st_gid) == (IDMAP_BASE, IDMAP_BASE),
               f"a file made by {IDMAP_BASE} shows as {st.st_uid}:{st.st_gid}")
    finally:
        call(libc.umount2, os.fsencode(view), 0)
    idmap_verify(top)


def idmap_verify(top):
    """What the idmapped mount stored, as on-disk ids on the plain mount."""
    base = os.path.join(top, "idmap")
    for name, want in (("dir/made", (0, 0)), ("dir/subdir", (0, 0)), ("file", (5, 7)),
                       ("foreign", (5000, 5000))):
        st = os.stat(os.path.join(base, name))
        expect((st.st_uid, st.st_gid) == want,
               f"{name} is owned by {st.st_uid}:{st.st_gid} on disk, expected {want}")


def falloc(top):
    path = os.path.join(top, "falloc")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        # Default mode: the size grows and the range reads as zeros.
        fallocate(fd, 0, 0, MIB)
        st = os.fstat(fd)
        expect(st.st_size == MIB, f"size {st.st_size} after fallocate of 1M")
        expect(st.st_blocks * 512 >= MIB, f"{st.st_blocks} blocks after fallocate of 1M")
        expect(os.pread(fd, MIB, 0) == bytes(MIB), "preallocated range does not read zeros")
        # KEEP_SIZE: space beyond the end, size unchanged.
        fallocate(fd, FALLOC_FL_KEEP_SIZE, MIB, MIB)
        st = os.fstat(fd)
        expect(st.st_size == MIB, f"KEEP_SIZE changed the size to {st.st_size}")
        expect(st.st_blocks * 512 >= 2 * MIB, f"{st.st_blocks} blocks after KEEP_SIZE")
        # Data over part of it, then a hole punched through the middle of the data.
        data = pattern(3, 256 * KIB)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        before = os.fstat(fd).st_blocks
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * KIB, 64 * KIB)
        got = os.pread(fd, 256 * KIB, 0)
        want = data[:64 * KIB] + bytes(64 * KIB) + data[128 * KIB:]
        expect(got == want, "punched range does not read zeros, or its neighbours changed")
        expect(os.fstat(fd).st_size == MIB, "PUNCH_HOLE changed the size")
        after = os.fstat(fd).st_blocks
        expect(after <= before - 128, f"PUNCH_HOLE freed no blocks ({before} -> {after})")
        # A punch of dirty (unwritten-back) data must not let it come back.
        os.pwrite(fd, pattern(4, 8 * KIB), 512 * KIB)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 512 * KIB, 8 * KIB)
        os.fsync(fd)
        expect(os.pread(fd, 8 * KIB, 512 * KIB) == bytes(8 * KIB),
               "dirty data came back after PUNCH_HOLE")
        # ZERO_RANGE over data and a hole: zeros, its neighbours kept, the space allocated,
        # and beyond the end the size grows (or not, with KEEP_SIZE).
        os.pwrite(fd, pattern(5, 192 * KIB), 0)
        fallocate(fd, FALLOC_FL_ZERO_RANGE, 4 * KIB + 100, 96 * KIB)
        got = os.pread(fd, 192 * KIB, 0)
        data = pattern(5, 192 * KIB)
        want = data[:4 * KIB + 100] + bytes(96 * KIB) + data[100 * KIB + 100:]
        expect(got == want, "zeroed range does not read zeros, or its neighbours changed")
        fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, MIB - 4 * KIB, 64 * KIB)
        expect(os.fstat(fd).st_size == MIB, "ZERO_RANGE with KEEP_SIZE changed the size")
        fallocate(fd, FALLOC_FL_ZERO_RANGE, MIB - 4 * KIB, 3 * MIB)
        st = os.fstat(fd)
        expect(st.st_size == 4 * MIB - 4 * KIB, f"ZERO_RANGE to {4 * MIB - 4 * KIB}: size {st.st_size}")
        expect(st.st_blocks * 512 >= 3 * MIB, f"ZERO_RANGE allocated too little ({st.st_blocks} blocks)")
        expect(os.pread(fd, 3 * MIB, MIB - 4 * KIB) == bytes(3 * MIB), "zeroed tail not zeros")
        expect_errno(errno.EOPNOTSUPP, "PUNCH_HOLE without KEEP_SIZE", fallocate, fd,
                     FALLOC_FL_PUNCH_HOLE, 0, 4096)
        expect_errno(errno.EOPNOTSUPP, "COLLAPSE_RANGE", fallocate, fd,
                     FALLOC_FL_COLLAPSE_RANGE, 0, 4096)
        expect_errno(errno.EINVAL, "a zero length", fallocate, fd, 0, 0, 0)
        expect_errno(errno.EFBIG, "past the largest file", fallocate, fd, 0, 2**62, 4096)
    finally:
        os.close(fd)
    falloc_fsize_limit(path)


def space_used(path):
    return os.stat(path).st_blocks * 512


def blocks(top):
    """st_blocks counts dirty data over holes before writeback places it (delayed
    allocation), once, and does not change when writeback runs."""
    d = os.path.join(top, "blocks")
    os.mkdir(d)
    path = lambda name: os.path.join(d, name)
    write_at(path("overwritten"), 0, pattern(1, 64 * KIB))
    write_at(path("hole"), 0, pattern(2, 64 * KIB), size=128 * KIB)
    fd = os.open(path("prealloc"), os.O_RDWR | os.O_CREAT, 0o644)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 128 * KIB)
    os.pwrite(fd, pattern(3, 64 * KIB), 0)
    os.close(fd)
    write_at(path("mapped"), 0, b"", size=64 * KIB)
    write_at(path("punched"), 0, pattern(4, 16 * KIB))
    settle(top)
    want = {"overwritten": 64 * KIB, "hole": 128 * KIB, "prealloc": 128 * KIB,
            "new": 64 * KIB, "mapped": 8 * KIB, "punched": 16 * KIB}
    write_at(path("overwritten"), 0, pattern(5, 64 * KIB))
    # The same hole written twice counts once.
    write_at(path("hole"), 64 * KIB, pattern(6, 64 * KIB))
    write_at(path("hole"), 64 * KIB, pattern(7, 64 * KIB))
    # Past the end, into space preallocated and counted already.
    write_at(path("prealloc"), 64 * KIB, pattern(8, 64 * KIB))
    write_at(path("new"), 0, pattern(9, 64 * KIB))
    # Stores through a shared mapping into two pages of a hole.
    fd = os.open(path("mapped"), os.O_RDWR)
    m = mmap.mmap(fd, 64 * KIB)
    m[4 * KIB:4 * KIB + 3] = b"abc"
    m[40 * KIB] = 0x5A
    # Dirty data over a hole, punched out before writeback: nothing left of it to count.
    write_at(path("punched"), 32 * KIB, pattern(10, 16 * KIB))
    pfd = os.open(path("punched"), os.O_RDWR)
    fallocate(pfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 32 * KIB, 16 * KIB)
    os.close(pfd)
    before = {name: space_used(path(name)) for name in want}
    m.flush()
    m.close()
    os.close(fd)
    settle(top)
    after = {name: space_used(path(name)) for name in want}
    expect(before == want, f"space used before writeback {before}, expected {want}")
    expect(after == want, f"space used after writeback {after}, expected {want}")


def falloc_fsize_limit(path):
    """Under RLIMIT_FSIZE, a fallocate that would grow the file past the limit fails with
    EFBIG (and SIGXFSZ, ignored here), one with KEEP_SIZE or within the limit succeeds."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (8 * MIB, 8 * MIB))
            fd = os.open(path, os.O_RDWR)
            try:
                size = os.fstat(fd).st_size
                expect_errno(errno.EFBIG, "fallocate past RLIMIT_FSIZE", fallocate, fd, 0,
                             0, 8 * MIB + 4096)
                expect(os.fstat(fd).st_size == size, "a refused fallocate changed the size")
                fallocate(fd, FALLOC_FL_KEEP_SIZE, 8 * MIB, MIB)
                fallocate(fd, 0, 0, 8 * MIB)
                expect(os.fstat(fd).st_size == 8 * MIB, "fallocate up to RLIMIT_FSIZE")
                code = 0
            finally:
                os.close(fd)
        except (Failed, OSError) as e:
            print(f"fallocate: {e}", file=sys.stderr)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    expect(os.waitstatus_to_exitcode(status) == 0, "fallocate under RLIMIT_FSIZE")


def falloc_large(top):
    """A 512 MiB preallocation (131072 blocks in one transaction) and its release."""
    path = os.path.join(top, "falloc-large")
    settle(top)
    free0 = free_bytes(top)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        fallocate(fd, 0, 0, 512 * MIB)
        os.fsync(fd)
        st = os.fstat(fd)
        expect(st.st_size == 512 * MIB, f"size {st.st_size} after fallocate of 512M")
        held = free_bytes(top)
        expect(held <= free0 - 512 * MIB, f"free {free0} -> {held} after fallocate of 512M")
        expect(os.pread(fd, 4096, 300 * MIB) == bytes(4096), "preallocated block not zeros")
    finally:
        os.close(fd)
    os.unlink(path)
    settle(top)
    back = free_bytes(top)
    expect(back >= free0 - MIB, f"space not back after unlink: {free0} -> {back}")


def rename_setup(top):
    a, b, d = (os.path.join(top, n) for n in ("ren-a", "ren-b", "ren-dir"))
    write_at(a, 0, b"A")
    write_at(b, 0, b"B")
    os.mkdir(d)
    write_at(os.path.join(d, "inside"), 0, b"D")
    expect_errno(errno.EEXIST, "RENAME_NOREPLACE onto a file", renameat2, a, b,
                 RENAME_NOREPLACE)
    renameat2(a, os.path.join(top, "ren-c"), RENAME_NOREPLACE)
    renameat2(os.path.join(top, "ren-c"), a, RENAME_NOREPLACE)
    # A file and a directory swap places.
    renameat2(b, d, RENAME_EXCHANGE)
    expect_errno(errno.ENOENT, "RENAME_EXCHANGE with a missing target", renameat2, a,
                 os.path.join(top, "ren-none"), RENAME_EXCHANGE)
    expect_errno(errno.EINVAL, "RENAME_EXCHANGE | RENAME_NOREPLACE", renameat2, a, b,
                 RENAME_EXCHANGE | RENAME_NOREPLACE)
    # A directory into its own subtree.
    expect_errno(errno.EINVAL, "a directory into itself", renameat2, os.path.join(top, "ren-b"),
                 os.path.join(top, "ren-b", "sub"), 0)
    rename_verify(top)


def rename_verify(top):
    b, d = os.path.join(top, "ren-b"), os.path.join(top, "ren-dir")
    expect(os.path.isdir(b), "after RENAME_EXCHANGE ren-b is not the directory")
    expect(open(os.path.join(b, "inside"), "rb").read() == b"D", "the swapped directory lost a file")
    expect(open(d, "rb").read() == b"B", "after RENAME_EXCHANGE ren-dir is not the file")
    expect(open(os.path.join(top, "ren-a"), "rb").read() == b"A", "ren-a changed")
    expect(os.stat(b).st_nlink == 2, f"swapped directory has {os.stat(b).st_nlink} links")
    # The swapped directory's ".." is still the top directory.
    expect(os.stat(os.path.join(b, "..")).st_ino == os.stat(top).st_ino, "'..' is wrong")


NODES = {
    "fifo": (stat.S_IFIFO, 0),
    "socket": (stat.S_IFSOCK, 0),
    "char": (stat.S_IFCHR, os.makedev(1, 3)),
    "block": (stat.S_IFBLK, os.makedev(7, 200)),
}


def mknod_setup(top):
    for name, (kind, dev) in NODES.items():
        os.mknod(os.path.join(top, "node-" + name), kind | 0o640, dev)
    mknod_verify(top)


def mknod_verify(top):
    for name, (kind, dev) in NODES.items():
        st = os.lstat(os.path.join(top, "node-" + name))
        expect(stat.S_IFMT(st.st_mode) == kind, f"{name}: mode {oct(st.st_mode)}")
        expect(stat.S_IMODE(st.st_mode) == 0o640, f"{name}: permissions {oct(st.st_mode)}")
        if dev:
            expect(st.st_rdev == dev, f"{name}: device {os.major(st.st_rdev)}:"
                   f"{os.minor(st.st_rdev)}")
    # The character device is the real /dev/null.
    with open(os.path.join(top, "node-char"), "wb") as f:
        f.write(b"nothing")


def tmpfile_setup(top):
    settle(top)
    free0 = free_bytes(top)
    # An O_TMPFILE given a name by linkat through /proc/self/fd.
    fd = os.open(top, os.O_TMPFILE | os.O_RDWR, 0o600)
    data = pattern(5, 3 * MIB)
    os.write(fd, data)
    link_fd(fd, os.path.join(top, "tmp-linked"))
    os.close(fd)
    expect(open(os.path.join(top, "tmp-linked"), "rb").read() == data, "linked O_TMPFILE data")
    # With O_EXCL it can never get a name.
    fd = os.open(top, os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
    expect_errno(errno.ENOENT, "linkat of an O_TMPFILE | O_EXCL", link_fd, fd,
                 os.path.join(top, "tmp-never"))
    os.close(fd)
    # One never linked: its space comes back at close.
    fd = os.open(top, os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(fd, pattern(6, 16 * MIB))
    os.fsync(fd)
    settle(top)
    held = free_bytes(top)
    expect(held <= free0 - 16 * MIB, f"16M O_TMPFILE: free {free0} -> {held}")
    os.close(fd)
    settle(top)
    back = free_bytes(top)
    expect(back >= held + 15 * MIB, f"closed O_TMPFILE kept its space: free {held} -> {back}")


def tmpfile_verify(top):
    got = open(os.path.join(top, "tmp-linked"), "rb").read()
    expect(got == pattern(5, 3 * MIB), "linked O_TMPFILE changed after the remount")
    expect(not os.path.exists(os.path.join(top, "tmp-never")), "tmp-never exists")


def unlinked_open(top):
    """An unlinked file stays readable while open; its space returns at the last close."""
    path = os.path.join(top, "unlinked")
    data = pattern(8, 16 * MIB)
    write_at(path, 0, data)
    settle(top)
    free0 = free_bytes(top)
    fd = os.open(path, os.O_RDWR)
    os.unlink(path)
    expect(not os.path.exists(path), "unlinked name still there")
    settle(top)
    held = free_bytes(top)
    expect(held <= free0 + MIB, f"space of an open unlinked file freed early: {free0} -> {held}")
    expect(os.pread(fd, 16 * MIB, 0) == data, "open unlinked file reads wrong data")
    os.pwrite(fd, b"still writable", 0)
    expect(os.fstat(fd).st_nlink == 0, "open unlinked file has links")
    os.close(fd)
    settle(top)
    back = free_bytes(top)
    expect(back >= held + 15 * MIB, f"space not back after the last close: {held} -> {back}")


def readdir(top):
    """telldir/seekdir positions stay valid while entries are unlinked meanwhile."""
    d = os.path.join(top, "many")
    os.mkdir(d)
    names = [f"entry-{i:04}-{'x' * (i % 40)}" for i in range(600)]
    for n in names:
        write_at(os.path.join(d, n), 0, b"")

    class Dirent(ctypes.Structure):
        _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                    ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                    ("d_name", ctypes.c_char * 256)]

    libc.opendir.restype = ctypes.c_void_p
    libc.readdir.restype = ctypes.POINTER(Dirent)
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.telldir.restype = ctypes.c_long
    libc.telldir.argtypes = [ctypes.c_void_p]
    libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    libc.closedir.argtypes = [ctypes.c_void_p]

    def read(dirp, count=None):
        out = []
        while count is None or len(out) < count:
            ent = libc.readdir(dirp)
            if not ent:
                break
            name = ent.contents.d_name.decode()
            if name not in (".", ".."):
                out.append(name)
        return out

    dirp = libc.opendir(os.fsencode(d))
    expect(dirp, "opendir failed")
    try:
        first = read(dirp, 200)
        pos = libc.telldir(dirp)
        second = read(dirp, 100)
        # Unlink some already read and some not yet read, then go back to pos.
        gone = set(first[::3]) | set(second[::2])
        for n in gone:
            os.unlink(os.path.join(d, n))
        libc.seekdir(dirp, pos)
        rest = read(dirp)
    finally:
        libc.closedir(dirp)
    seen = first + rest
    expect(len(seen) == len(set(seen)), "an entry came twice after seekdir")
    expect(set(second) - gone <= set(rest), "seekdir lost entries that were still there")
    expect(not (set(rest) & gone), "seekdir returned unlinked entries")
    expect(set(seen) | gone >= set(names), "entries never returned")
    remaining = sorted(os.listdir(d))
    expect(remaining == sorted(set(names) - gone), "directory contents wrong after unlinks")


def readdir_renames(top):
    """A reader that renames each entry it reads, away and back, reads each once and
    comes to the end (a renamed entry takes a new position past the others)."""
    d = os.path.join(top, "renamed")
    os.mkdir(d)
    count = 1000
    names = [str(i) for i in range(1, count + 1)]
    for n in names:
        write_at(os.path.join(d, n), 0, b"")
    seen = []
    with os.scandir(d) as it:
        for entry in it:
            seen.append(entry.name)
            expect(len(seen) <= 3 * count, f"readdir did not end: {len(seen)} entries")
            if len(seen) > 3 * count:
                break
            os.rename(os.path.join(d, entry.name), os.path.join(d, "TEMPFILE"))
            os.rename(os.path.join(d, "TEMPFILE"), os.path.join(d, entry.name))
    expect(sorted(seen) == sorted(names), f"{len(seen)} entries read, {len(set(seen))} distinct")
    expect(sorted(os.listdir(d)) == sorted(names), "directory contents wrong after the renames")


def long_symlink(top):
    for length in (1, 900, 901, 4095):
        target = ("t" * 200 + "/") * (length // 201) + "u" * (length % 201)
        target = target[:length]
        path = os.path.join(top, f"symlink-{length}")
        os.symlink(target, path)
        expect(os.readlink(path) == target, f"{length}-byte symlink target read back wrong")
        expect(os.lstat(path).st_size == length, f"{length}-byte symlink has the wrong size")
    expect_errno(errno.ENAMETOOLONG, "a 4096-byte symlink target", os.symlink, "v" * 4096,
                 os.path.join(top, "symlink-too-long"))


def long_symlink_verify(top):
    for length in (1, 900, 901, 4095):
        expect(len(os.readlink(os.path.join(top, f"symlink-{length}"))) == length,
               f"{length}-byte symlink after the remount")


def whiteout_setup(top):
    a, b, c = (os.path.join(top, n) for n in ("wo-a", "wo-b", "wo-c"))
    write_at(a, 0, b"W")
    renameat2(a, b, RENAME_WHITEOUT)
    write_at(c, 0, b"C")
    expect_errno(errno.EEXIST, "RENAME_WHITEOUT | RENAME_NOREPLACE onto a file", renameat2,
                 c, b, RENAME_WHITEOUT | RENAME_NOREPLACE)
    expect(open(c, "rb").read() == b"C", "a refused RENAME_WHITEOUT moved the file")
    expect_errno(errno.EINVAL, "RENAME_WHITEOUT | RENAME_EXCHANGE", renameat2, c, b,
                 RENAME_WHITEOUT | RENAME_EXCHANGE)
    whiteout_verify(top)


def whiteout_verify(top):
    st = os.lstat(os.path.join(top, "wo-a"))
    expect(stat.S_ISCHR(st.st_mode) and st.st_rdev == 0,
           f"wo-a is not a whiteout (0:0 character device): mode {oct(st.st_mode)}, "
           f"device {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
    expect(open(os.path.join(top, "wo-b"), "rb").read() == b"W", "wo-b lost the moved data")


# POSIX ACLs in their xattr form (include/uapi/linux/posix_acl_xattr.h): a version, then
# (tag, permissions, id) entries.
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 1, 2, 4, 8, 0x10, 0x20
NO_ID = 0xFFFFFFFF
NOBODY = 65534
ACCESS, DEFAULT = "system.posix_acl_access", "system.posix_acl_default"


def acl(*entries):
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)


def acl_entries(path, name):
    value = os.getxattr(path, name)
    expect(len(value) >= 4 and (len(value) - 4) % 8 == 0, f"{name}: {len(value)} bytes")
    return sorted(struct.unpack_from("<HHI", value, 4 + 8 * k) for k in range((len(value) - 4) // 8))


def readable_by(path, uid):
    """Whether `uid` (no supplementary groups) may open `path` for reading."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.close(os.open(path, os.O_RDONLY))
            os._exit(0)
        except PermissionError:
            os._exit(13)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    expect(code in (0, 13), f"the child checking {path} failed ({code})")
    return code == 0


# A file's access ACL that grants nobody read; a directory's default ACL passed on.
GRANT = acl((ACL_USER_OBJ, 6, NO_ID), (ACL_USER, 4, NOBODY), (ACL_GROUP_OBJ, 0, NO_ID),
            (ACL_MASK, 4, NO_ID), (ACL_OTHER, 0, NO_ID))
INHERIT = acl((ACL_USER_OBJ, 7, NO_ID), (ACL_USER, 6, NOBODY), (ACL_GROUP_OBJ, 5, NO_ID),
              (ACL_MASK, 7, NO_ID), (ACL_OTHER, 0, NO_ID))


def acl_setup(top):
    os.umask(0o022)
    f = os.path.join(top, "acl-file")
    write_at(f, 0, b"secret")
    os.chmod(f, 0o600)
    expect(not readable_by(f, NOBODY), "nobody reads a 0600 file without an ACL")
    os.setxattr(f, ACCESS, GRANT)
    expect(readable_by(f, NOBODY), "the access ACL does not let nobody read")
    expect(stat.S_IMODE(os.stat(f).st_mode) == 0o640,
           f"the group bits are not the ACL mask: {oct(os.stat(f).st_mode)}")
    # chmod changes the mask: nobody's entry is masked off.
    os.chmod(f, 0o600)
    expect(not readable_by(f, NOBODY), "chmod g-r does not mask the ACL")
    mask = [e for e in acl_entries(f, ACCESS) if e[0] == ACL_MASK]
    expect(mask == [(ACL_MASK, 0, NO_ID)], f"the mask after chmod: {mask}")
    os.chmod(f, 0o640)
    # An ACL the mode says all of is not kept.
    g = os.path.join(top, "acl-plain")
    write_at(g, 0, b"plain")
    os.setxattr(g, ACCESS, acl((ACL_USER_OBJ, 7, NO_ID), (ACL_GROUP_OBJ, 5, NO_ID),
                                (ACL_OTHER, 1, NO_ID)))
    expect(stat.S_IMODE(os.stat(g).st_mode) == 0o751, f"mode from ACL: {oct(os.stat(g).st_mode)}")
    expect_errno(errno.ENODATA, "an ACL equal to the mode is stored", os.getxattr, g, ACCESS)
    expect_errno(errno.EACCES, "a default ACL on a file", os.setxattr, g, DEFAULT, INHERIT)
    # Without a default ACL the umask applies; with one, the ACL does instead.
    write_at(os.path.join(top, "acl-umask"), 0, b"u")
    d = os.path.join(top, "acl-dir")
    os.mkdir(d, 0o755)
    os.setxattr(d, DEFAULT, INHERIT)
    fd = os.open(os.path.join(d, "inherited"), os.O_WRONLY | os.O_CREAT, 0o666)
    os.write(fd, b"inherited")
    os.close(fd)
    os.mkdir(os.path.join(d, "sub"), 0o777)
    os.mknod(os.path.join(d, "fifo"), stat.S_IFIFO | 0o666)
    fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o666)
    link_fd(fd, os.path.join(d, "tmpfile"))
    os.close(fd)
    acl_verify(top)


def acl_verify(top):
    f, d = os.path.join(top, "acl-file"), os.path.join(top, "acl-dir")
    expect(acl_entries(f, ACCESS) == sorted(struct.unpack_from("<HHI", GRANT, 4 + 8 * k)
                                            for k in range(5)), "the file's ACL changed")
    expect(readable_by(f, NOBODY), "nobody cannot read through the ACL")
    mode = stat.S_IMODE(os.stat(os.path.join(top, "acl-umask")).st_mode)
    expect(mode == 0o644, f"umask 022 not applied without a default ACL: {oct(mode)}")
    expect(os.getxattr(d, DEFAULT) == INHERIT, "the directory's default ACL changed")
    sub = os.path.join(d, "sub")
    expect(acl_entries(sub, DEFAULT) == acl_entries(d, DEFAULT), "the subdirectory's default ACL")
    for name, want in (("inherited", 0o660), ("sub", 0o770), ("fifo", 0o660), ("tmpfile", 0o660)):
        path = os.path.join(d, name)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        expect(mode == want, f"{name}: mode {oct(mode)} from the default ACL, want {oct(want)} "
               "(the umask does not apply)")
        users = [e for e in acl_entries(path, ACCESS) if e[0] == ACL_USER]
        expect(users == [(ACL_USER, 6, NOBODY)], f"{name}: inherited user entries {users}")
    expect(readable_by(os.path.join(d, "inherited"), NOBODY), "the inherited ACL does not grant")
    names = os.listxattr(f)
    expect(ACCESS in names, f"listxattr does not list the ACL: {names}")


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128)]


def name_to_handle(path):
    fh = FileHandle(handle_bytes=128)
    mount_id = ctypes.c_int()
    call(libc.name_to_handle_at, AT_FDCWD, os.fsencode(path), ctypes.byref(fh),
         ctypes.byref(mount_id), 0)
    return f"{fh.handle_type} {bytes(fh.f_handle[:fh.handle_bytes]).hex()}"


def open_by_handle(top, saved, flags=os.O_RDONLY):
    kind, data = saved.split()
    raw = bytes.fromhex(data)
    fh = FileHandle(handle_bytes=len(raw), handle_type=int(kind))
    ctypes.memmove(fh.f_handle, raw, len(raw))
    mount_fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return call(libc.open_by_handle_at, mount_fd, ctypes.byref(fh), flags)
    finally:
        os.close(mount_fd)


HANDLES = "fh-handles"


def handle_setup(top):
    os.makedirs(os.path.join(top, "fh-dir", "sub"))
    write_at(os.path.join(top, "fh-dir", "sub", "file"), 0, b"by handle")
    write_at(os.path.join(top, "fh-gone"), 0, b"gone")
    saved = {n: name_to_handle(os.path.join(top, *p)) for n, p in (
        ("file", ("fh-dir", "sub", "file")), ("sub", ("fh-dir", "sub")), ("gone", ("fh-gone",)))}
    os.unlink(os.path.join(top, "fh-gone"))
    with open(os.path.join(top, HANDLES), "w") as out:
        for name, value in saved.items():
            out.write(f"{name} {value}\n")
    handle_verify(top)


def handle_verify(top):
    saved = {}
    for line in open(os.path.join(top, HANDLES)):
        name, kind, data = line.split()
        saved[name] = f"{kind} {data}"
    fd = open_by_handle(top, saved["file"])
    expect(os.read(fd, 100) == b"by handle", "the file opened by handle reads wrong")
    os.close(fd)
    # A directory is reconnected to its path through its parents (get_parent).
    fd = open_by_handle(top, saved["sub"], os.O_RDONLY | os.O_DIRECTORY)
    path = os.readlink(f"/proc/self/fd/{fd}")
    os.close(fd)
    expect(path == os.path.join(os.path.realpath(top), "fh-dir", "sub"),
           f"the directory opened by handle is at {path}")
    expect_errno(errno.ESTALE, "open_by_handle_at of a removed file", open_by_handle, top,
                 saved["gone"])
    kind, data = saved["file"].split()
    expect_errno(errno.ESTALE, "a handle with another generation", open_by_handle, top,
                 f"{kind} {data[:16]}{'%08x' % (int(data[16:24], 16) ^ 1)}")


DIRECT = "direct.dat"


def aligned(size):
    """Page-aligned memory of `size` bytes, as O_DIRECT wants it."""
    return mmap.mmap(-1, size)


def direct_setup(top):
    """O_DIRECT: aligned reads and writes bypass the page cache and agree with it; an
    unaligned one is done through the page cache (as btrfs does), not refused."""
    path = os.path.join(top, DIRECT)
    size = 3 << 20
    data = pattern(71, size)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    buf = aligned(size)
    buf[:] = data
    expect(os.pwritev(fd, [buf], 0) == size, "short O_DIRECT write")
    expect(os.fstat(fd).st_size == size, f"size {os.fstat(fd).st_size} after an O_DIRECT write")
    back = aligned(size)
    expect(os.preadv(fd, [back], 0) == size, "short O_DIRECT read")
    expect(bytes(back) == data, "O_DIRECT read differs from what was written")
    # A buffered read sees it, and an O_DIRECT read sees a buffered write.
    expect(open(path, "rb").read() == data, "buffered read of O_DIRECT data differs")
    with open(path, "r+b") as f:
        f.seek(8192)
        f.write(b"B" * 4096)
    piece = aligned(4096)
    expect(os.preadv(fd, [piece], 8192) == 4096 and bytes(piece) == b"B" * 4096,
           "O_DIRECT read misses a buffered write")
    # Unaligned offset and length: done all the same.
    expect(os.pwrite(fd, b"unaligned", 100) == 9, "unaligned O_DIRECT write")
    expect(os.pread(fd, 9, 100) == b"unaligned", "unaligned O_DIRECT read")
    # Reads stop at the end of the file, past it read nothing.
    tail = aligned(1 << 20)
    expect(os.preadv(fd, [tail], size - 4096) == 4096, "O_DIRECT read across the end")
    expect(os.preadv(fd, [tail], size) == 0, "O_DIRECT read past the end")
    # Extends the file, and survives a remount (see direct_verify).
    buf2 = aligned(4096)
    buf2[:] = b"E" * 4096
    expect(os.pwritev(fd, [buf2], size) == 4096, "O_DIRECT extending write")
    os.fsync(fd)
    os.close(fd)


def direct_sparse(top):
    """O_DIRECT reads go straight into the caller's pages: data, holes and preallocated
    space (zeros) and the partial last block, into several buffers, across the 1 MiB
    pieces the read is made of."""
    path = os.path.join(top, "direct-sparse")
    mib = 1 << 20
    data = pattern(73, 2 * mib)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data[:mib + 8192], 0)       # data [0, 1 MiB + 8 KiB)
        os.posix_fallocate(fd, 2 * mib, mib)      # a hole, then preallocated [2, 3) MiB
        os.pwrite(fd, data[mib:], 3 * mib)        # data [3, 4) MiB
        os.pwrite(fd, b"T" * 100, 4 * mib)        # a partial last block
        os.fsync(fd)
    finally:
        os.close(fd)
    want = bytearray(4 * mib + 100)
    want[:mib + 8192] = data[:mib + 8192]
    want[3 * mib:4 * mib] = data[mib:]
    want[4 * mib:] = b"T" * 100
    # An O_DIRECT read goes to the devices whatever the page cache holds (written back
    # first).
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        sizes = [3 * 4096, mib, 4 * mib + 8192 - 3 * 4096 - mib]
        bufs = [aligned(n) for n in sizes]
        n = os.preadv(fd, bufs, 0)
        got = b"".join(bytes(b) for b in bufs)[:n]
        expect(n == len(want), f"O_DIRECT read of a sparse file: {n} bytes, not {len(want)}")
        for at in range(0, len(want), 4096):
            expect(got[at:at + 4096] == want[at:at + 4096],
                   f"O_DIRECT read of a sparse file differs in the block at byte {at}")
        # From inside: a piece that starts in the hole and ends in the preallocated range.
        piece = aligned(mib)
        expect(os.preadv(fd, [piece], mib + 4096) == mib
               and bytes(piece) == bytes(want[mib + 4096:2 * mib + 4096]),
               "O_DIRECT read across data, hole and preallocated space differs")
        # Through a splice: copy_file_range from an O_DIRECT file reads into pipe pages
        # (a bvec iterator, not user memory).
        out = os.open(path + ".copy", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            done = 0
            while done < len(want):
                n = os.copy_file_range(fd, out, len(want) - done, done, done)
                if n == 0:
                    break
                done += n
            expect(done == len(want) and os.pread(out, len(want), 0) == bytes(want),
                   f"copy_file_range from an O_DIRECT file: {done} bytes, or they differ")
        finally:
            os.close(out)
            os.unlink(path + ".copy")
    finally:
        os.close(fd)


def direct_verify(top):
    path = os.path.join(top, DIRECT)
    size = 3 << 20
    want = bytearray(pattern(71, size))
    want[8192:12288] = b"B" * 4096
    want[100:109] = b"unaligned"
    want += b"E" * 4096
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = aligned(len(want))
    n = os.preadv(fd, [buf], 0)
    os.close(fd)
    expect(n == len(want) and bytes(buf) == bytes(want),
           f"after the remount the O_DIRECT file differs ({n} bytes read)")


CHECKS = {
    "direct-setup": direct_setup, "direct-verify": direct_verify, "direct-sparse": direct_sparse,
    "whiteout-setup": whiteout_setup, "whiteout-verify": whiteout_verify,
    "acl-setup": acl_setup, "acl-verify": acl_verify,
    "handle-setup": handle_setup, "handle-verify": handle_verify,
    "xattr-setup": xattr_setup, "xattr-verify": xattr_verify,
    "links-setup": links_setup, "links-verify": links_verify,
    "seek": seek, "fiemap": fiemap, "fiemap-delalloc": fiemap_delalloc, "fallocate": falloc, "blocks": blocks, "fallocate-large": falloc_large,
    "rename-setup": rename_setup, "rename-verify": rename_verify,
    "mknod-setup": mknod_setup, "mknod-verify": mknod_verify,
    "tmpfile-setup": tmpfile_setup, "tmpfile-verify": tmpfile_verify,
    "unlinked-open": unlinked_open, "readdir": readdir,
    "readdir-renames": readdir_renames,
    "idmap-setup": idmap_setup, "idmap-verify": idmap_verify,
    "symlink-setup": long_symlink, "symlink-verify": long_symlink_verify,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in CHECKS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(CHECKS)}}} DIR")
    try:
        CHECKS[sys.argv[1]](sys.argv[2])
    except (Failed, OSError) as e:
        sys.exit(f"{sys.argv[1]}: {e}")

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Shared helpers of the ferrofs selftests: TAP output with kselftest exit codes, the tools,
# scratch disks, mounting, and the checks every test ends with (fsck clean, kernel log
# clean). Sourced by each test program after it sets `ntests`.

set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
ko="${FERROFS_KO:-$root/fs/ferrofs/ferrofs.ko}"
mkfs="$root/tools/bin/mkfs.ferrofs"
fsck="$root/tools/bin/fsck.ferrofs"
export PATH="$PATH:/usr/sbin:/sbin:$HOME/.cargo/bin:/root/.cargo/bin"
read -r -a disks <<<"${FERROFS_DISKS:-}"

KSFT_PASS=0 KSFT_FAIL=1 KSFT_SKIP=4
n=0 failed=0
log_mark="ferrofs-selftest-$$-$RANDOM"
[ -w /dev/kmsg ] && echo "$log_mark" >/dev/kmsg

ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $1"; }
skip() { n=$((n + 1)); echo "ok $n $1 # SKIP $2"; }
# todo DESCRIPTION REASON COMMAND...: a known bug, as a TAP TODO test: reported, not counted
# as a failure while it fails (an "ok ... # TODO" says the bug went away).
todo() {
	local desc="$1" why="$2" out; shift 2
	n=$((n + 1))
	if out="$("$@" 2>&1)"; then echo "ok $n $desc # TODO $why"; else
		echo "not ok $n $desc # TODO $why"; diag <<<"$out"
	fi
}
check() { # check DESCRIPTION COMMAND...: passes when COMMAND succeeds (its output as diag)
	local desc="$1" out; shift
	if out="$("$@" 2>&1)"; then ok "$desc"; else
		not_ok "$desc"; diag <<<"$out"
		# The first kernel messages of ferrofs say why, the last what it led to.
		log_since_mark | grep 'ferrofs: ' | grep -v 'filesystem type registered' |
			sed -n '1,3p;$p' | diag
	fi
}
diag() { sed 's/^/# /' | tail -n 40; }

tap_begin() {
	echo "TAP version 13"
	echo "1..$ntests"
	if [ "$(id -u)" != 0 ]; then
		for ((i = 0; i < ntests; i++)); do skip "ferrofs test" "needs root"; done
		exit $KSFT_SKIP
	fi
}

tap_end() {
	[ "$n" = "$ntests" ] || { echo "# planned $ntests tests, ran $n"; exit $KSFT_FAIL; }
	[ "$failed" = 0 ] && exit $KSFT_PASS || exit $KSFT_FAIL
}

log_since_mark() { dmesg | sed -n "/$log_mark/,\$p"; }

# The kernel log since the test began holds no warning, bug, lockdep report or oops.
check_log_clean() {
	local bad
	bad="$(log_since_mark | grep -E 'BUG:|WARNING:|Oops|Kernel panic|general protection fault|Call Trace:|possible circular locking|INFO: task .* blocked' || true)"
	if [ -z "$bad" ]; then ok "kernel log clean"; else not_ok "kernel log clean"; diag <<<"$bad"; fi
}

need_disks() { # COUNT: fewer scratch disks is a setup error, not a skip
	if [ "${#disks[@]}" -lt "$1" ]; then
		echo "# needs $1 scratch disks in FERROFS_DISKS, got ${#disks[@]}"
		exit $KSFT_FAIL
	fi
}

load_module() { grep -q '^ferrofs ' /proc/modules || insmod "$ko"; }

# begin_test DISKS: TAP header, at least DISKS scratch disks (as d0 to d3), the module.
begin_test() {
	tap_begin
	need_disks "$1"
	load_module
	d0="${disks[0]:-}" d1="${disks[1]:-}" d2="${disks[2]:-}" d3="${disks[3]:-}"
}

mnt="$(mktemp -d /tmp/ferrofs-mnt.XXXXXX)"
cleanup_mount() { mountpoint -q "$mnt" && umount "$mnt"; rmdir "$mnt" 2>/dev/null; true; }
trap cleanup_mount EXIT

# mount_ferrofs [OPTIONS] DEVICE...: the first device is the one mounted, the others are
# given with device=.
mount_ferrofs() {
	local opts=""
	if [ "${1:-}" != "" ] && [ "${1#/}" = "$1" ]; then opts="$1"; shift; fi
	local main="$1"; shift
	for d in "$@"; do opts="${opts:+$opts,}device=$d"; done
	mount -t ferrofs ${opts:+-o "$opts"} "$main" "$mnt"
}

# on_ferrofs DIR: DIR is on a mounted ferrofs (a failed mount leaves a plain directory that
# would take the test's writes and pass its checks).
on_ferrofs() {
	[ "$(stat -f -c %t "$1" 2>/dev/null)" = 46455252 ] || { echo "$1 is not on a ferrofs mount" >&2; false; }
}

# fsck_clean DEVICE...: `fsck.ferrofs -n` finds nothing.
fsck_clean() { "$fsck" -n "$@"; }

# Writes a tree of files with pseudo-random contents and sizes under DIR, and its checksum
# list to LIST: small and large files, nested directories, a symlink and a hard link.
make_tree() { # DIR LIST SEED
	local dir="$1" list="$2" seed="$3"
	: >"$list"
	on_ferrofs "$(dirname "$dir")" || return
	mkdir -p "$dir"
	python3 - "$dir" "$seed" <<'EOF'
import os, random, sys
top, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
for d in range(4):
    sub = os.path.join(top, f"d{d}", f"e{d % 2}")
    os.makedirs(sub, exist_ok=True)
    for f in range(12):
        size = rng.choice([0, 1, 100, 4095, 4096, 4097, 65536, 300000, 1 << 20])
        with open(os.path.join(sub, f"f{f}"), "wb") as out:
            out.write(rng.randbytes(size))
os.symlink("d0/e0/f1", os.path.join(top, "link"))
os.link(os.path.join(top, "d1", "e1", "f2"), os.path.join(top, "hard"))
EOF
	(cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$list"
}

# verify_tree DIR LIST: every file has its checksum, the symlink and link are there.
verify_tree() {
	on_ferrofs "$1" && [ -s "$2" ] && (cd "$1" && sha256sum --quiet -c "$2") && [ "$(readlink "$1/link")" = d0/e0/f1 ] &&
		[ "$(stat -c %h "$1/hard")" = 2 ]
}

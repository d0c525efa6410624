#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# POSIX behaviour: the whole pjdfstest suite on ferrofs (remounts read-only allowed, a
# tmpfs as the second filesystem for EXDEV). One TAP test per syscall group: it passes when
# no test of the group failed. Skipped tests are listed with pjdfstest's reason.

. "$(dirname "$0")/lib.sh"
need_disks 1
load_module
d0="${disks[0]}"
command -v pjdfstest >/dev/null || { echo "# pjdfstest not installed (scripts/setup installs it)"; exit $KSFT_FAIL; }

work="$(mktemp -d /tmp/ferrofs-pjd.XXXXXX)"
secondary="$work/secondary"
mkdir -p "$secondary" && mount -t tmpfs none "$secondary"
config() { # ALLOW-REMOUNT
	cat <<T
[features]
posix_fallocate = {}
rename_ctime = {}
utimensat = {}
utime_now = {}

[settings]
# Longer than a clock tick: timestamps come from the coarse clock.
naptime = 0.05
allow_remount = $1

[dummy_auth]
entries = [ ["nobody", "nogroup"], ["daemon", "daemon"] ]
T
}
config false >"$work/pjdfstest.toml"
config true >"$work/pjdfstest-remount.toml"

"$mkfs" -f "$d0" >/dev/null
mount_ferrofs "$d0"
# The whole suite without the read-only remount (EROFS) tests, then those on a fresh
# mount: pjdfstest keeps descriptors of some files it unlinked open until it exits, and
# Linux refuses a read-only remount (EBUSY) while an unlinked file is open, on any
# filesystem. Once pjdfstest has exited, the remount must work.
(on_ferrofs "$mnt" || exit 125; cd "$mnt" && pjdfstest -c "$work/pjdfstest.toml" -p "$mnt" -s "$secondary") >"$work/out" 2>&1
rc=$?
(mount -o remount,ro "$mnt" && mount -o remount,rw "$mnt") >"$work/remount" 2>&1
remount_rc=$?
umount "$mnt"
"$mkfs" -f "$d0" >/dev/null
mount_ferrofs "$d0"
(on_ferrofs "$mnt" || exit 125; cd "$mnt" && pjdfstest -c "$work/pjdfstest-remount.toml" -p "$mnt" erofs) >"$work/out-erofs" 2>&1
rc_erofs=$?
# Each EROFS test replaces its "skipped" line of the first run.
grep -E ' (ok|FAILED)$' "$work/out-erofs" | awk '{print $1}' >"$work/erofs-names"
grep -vFf "$work/erofs-names" "$work/out" >"$work/out.rest" || true
cat "$work/out.rest" "$work/out-erofs" >"$work/out"
umount "$secondary"
groups="$(grep -oE '^[a-z_]+::' "$work/out" | sort -u | tr -d ':')"
ntests=$(($(wc -w <<<"$groups") + 4))
tap_begin
echo "# pjdfstest exit status $rc: $(grep -cE ' ok$' "$work/out") passed, $(grep -cE ' FAILED$' "$work/out") failed, $(grep -cE ' skipped$' "$work/out") skipped"
for g in $groups; do
	p=$(grep -cE "^$g::.* ok$" "$work/out")
	f=$(grep -cE "^$g::.* FAILED$" "$work/out")
	s=$(grep -cE "^$g::.* skipped$" "$work/out")
	if [ "$f" = 0 ]; then ok "pjdfstest $g: $p passed, $s skipped"; else
		not_ok "pjdfstest $g: $p passed, $f failed, $s skipped"
		grep -A1 -E "^$g::.* FAILED$" "$work/out" | diag
	fi
	grep -A1 -E "^$g::.* skipped$" "$work/out" | grep -v '^--' | paste - - | sed 's/  */ /g; s/^/# skipped: /'
done
check "pjdfstest ran to the end" test "$rc" -le 1 -a "$rc_erofs" -le 1
check "remount read-only and back right after the whole suite" \
	bash -c "[ $remount_rc = 0 ] || { cat '$work/remount'; false; }"
umount "$mnt"
check "fsck clean after pjdfstest" fsck_clean "$d0"
check_log_clean
rm -rf "$work"
tap_end

#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# raid1 over two and three devices: a file tree written with every device present reads
# back whole from each device alone (two devices) or with any one missing (three), mounted
# degraded; fsck finds every copy of every block good. raid10 over four devices: a degraded
# mount without both devices of a mirrored pair is refused, one device missing from each
# pair reads the tree.

ntests=17
. "$(dirname "$0")/lib.sh"
begin_test 4
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

# raid10 data (raid1c3 metadata) over four devices. The data chunk's stripes, two at a time,
# are its mirrored pairs; device k is the k-th given to mkfs.
all=("$d0" "$d1" "$d2" "$d3")
"$mkfs" -f -d raid10 -m raid1c3 "${all[@]}" >/dev/null
check "raid10 over four devices: mount" mount_ferrofs "${all[@]}"
make_tree "$mnt/tree" "$list" 4
umount "$mnt"
check "raid10 over four devices: fsck clean" fsck_clean "${all[@]}"
data_chunks="$("$root/tools/bin/ferroctl" dump --tree 3 "${all[@]}" | grep -E '^chunk [0-9]+ data raid10 ')"
stripes=()
[ "$(grep -c . <<<"$data_chunks")" != 1 ] ||
	read -r -a stripes <<<"$(grep -o 'devid: [0-9]*' <<<"$data_chunks" | cut -d' ' -f2 | tr '\n' ' ')"
# devices_except DEVID...: the devices but those.
devices_except() {
	local k out=()
	for k in 1 2 3 4; do [[ " $* " == *" $k "* ]] || out+=("${all[k - 1]}"); done
	echo "${out[@]}"
}
if [ "${#stripes[@]}" = 4 ]; then
	said=0
	for pair in "${stripes[0]} ${stripes[1]}" "${stripes[2]} ${stripes[3]}"; do
		desc="raid10 over four devices: the mirrored pair $pair missing"
		# shellcheck disable=SC2046
		if mount_ferrofs ro,degraded $(devices_except $pair) 2>/dev/null; then
			umount "$mnt"; not_ok "$desc: mount refused"
		elif [ "$(log_since_mark | grep -c 'cannot mount: too many devices missing to read every chunk')" -gt "$said" ]; then
			said=$((said + 1)); ok "$desc: mount refused, and the kernel log says why"
		else
			not_ok "$desc: mount refused, and the kernel log says why"; log_since_mark | tail -n 3 | diag
		fi
	done
	# shellcheck disable=SC2046
	verify_degraded "raid10 over four devices: devices ${stripes[0]} and ${stripes[3]} missing" \
		$(devices_except "${stripes[0]}" "${stripes[3]}")
	# shellcheck disable=SC2046
	verify_degraded "raid10 over four devices: devices ${stripes[1]} and ${stripes[2]} missing" \
		$(devices_except "${stripes[1]}" "${stripes[2]}")
else
	for t in "pair 1 missing: refused" "pair 2 missing: refused" "one of each pair missing" \
		"the other of each pair missing"; do
		not_ok "raid10 over four devices: $t (not one data chunk of four stripes: ${stripes[*]:-none})"
	done
fi
check_log_clean
rm -f "$list"
tap_end

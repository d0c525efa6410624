#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# raid1 over two and three devices: a file tree written with every device present reads
# back whole from each device alone (two devices) or with any one missing (three), mounted
# degraded; fsck finds every copy of every block good. raid10 over four devices: a degraded
# mount without both devices of a mirrored pair is refused, one device missing from each
# pair reads the tree. Data blocks damaged on disk: readahead, which checks each block's
# checksum as its bio completes, gives the good mirror's copy where one mirror is bad (and
# rewrites the bad copy from it), and EIO where every copy is.

ntests=25
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

# damage_block DEVICE FILE INDEX: flips a byte of the first block on DEVICE (searched in
# its first 512 MiB, block by block) that holds block INDEX of FILE.
damage_block() {
	python3 - "$@" <<'PY'
import sys
dev, name, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(name, "rb") as f:
    f.seek(index * 4096)
    want = f.read(4096)
with open(dev, "r+b", buffering=0) as d:
    for base in range(0, 512 << 20, 1 << 20):
        d.seek(base)
        buf = d.read(1 << 20)
        for at in range(0, len(buf), 4096):
            if buf[at:at + 4096] == want:
                d.seek(base + at + 100)
                d.write(bytes([want[100] ^ 0x5A]))
                sys.exit(0)
sys.exit("block %d of %s not found on %s" % (index, name, dev))
PY
}

# cmp_direct FILE EXPECTED: FILE read with O_DIRECT is EXPECTED.
cmp_direct() {
	dd if="$1" bs=1M iflag=direct status=none | cmp - "$2"
}

# expect_eio NAME COMMAND...: COMMAND fails with "Input/output error".
expect_eio() {
	local name="$1" out
	shift
	out="$("$@" 2>&1 >/dev/null)"
	if grep -q "Input/output error" <<<"$out"; then
		ok "$name"
	else
		not_ok "$name"
		echo "$out" | diag
	fi
}

# damage_blocks DEVICE INDEX...: damage_block of the blob for each pair.
damage_blocks() {
	while [ $# -ge 2 ]; do damage_block "$1" "$blob" "$2" || return; shift 2; done
}

blob="$(mktemp)"
head -c $((2 << 20)) /dev/urandom >"$blob"
"$mkfs" -f -d raid1 -m raid1 "$d0" "$d1" >/dev/null
if mount_ferrofs "$d0" "$d1" && cp "$blob" "$mnt/blob" && umount "$mnt"; then
	# Block 3 bad on the first device, block 200 on the second: whichever copy readahead
	# reads has a bad block, which must come from the other mirror.
	check "raid1 data: a block damaged on each device" damage_blocks "$d0" 3 "$d1" 200
	mount_ferrofs "$d0" "$d1"
	# O_DIRECT first: its bios into the caller's memory meet the damaged block of the copy
	# they read, and the engine reads that block from the other.
	check "raid1 data: an O_DIRECT read of a damaged block reads from the good mirror" \
		cmp_direct "$mnt/blob" "$blob"
	check "raid1 data: a damaged block reads from the good mirror" cmp "$blob" "$mnt/blob"
	umount "$mnt"
	# The bad copy the read met is rewritten from the good one, and the kernel log says
	# where: that device alone now reads the whole file.
	devid="$(log_since_mark | sed -n 's/.*block [0-9]* on device \([0-9]*\) failed its checksum: rewritten from a good copy.*/\1/p' | head -n 1)"
	if [ "$devid" = 1 ] || [ "$devid" = 2 ]; then
		ok "raid1 data: the kernel log names the rewritten copy"
		alone="$d0"; [ "$devid" = 2 ] && alone="$d1"
		if mount_ferrofs ro,degraded "$alone"; then
			check "raid1 data: the rewritten copy reads back alone" cmp "$blob" "$mnt/blob"
			umount "$mnt"
		else
			not_ok "raid1 data: the rewritten copy reads back alone (no mount)"
		fi
	else
		not_ok "raid1 data: the kernel log names the rewritten copy"
		log_since_mark | tail -n 5 | diag
		not_ok "raid1 data: the rewritten copy reads back alone (no repair logged)"
	fi
	# Block 300 bad on both: no good copy.
	check "raid1 data: a block damaged on both devices" damage_blocks "$d0" 300 "$d1" 300
	mount_ferrofs "$d0" "$d1"
	expect_eio "raid1 data: a block damaged on every copy fails the read with EIO" \
		cat "$mnt/blob"
	expect_eio "raid1 data: an O_DIRECT read of a block damaged on every copy fails with EIO" \
		dd if="$mnt/blob" of=/dev/null bs=1M iflag=direct
	umount "$mnt"
else
	for t in "damaged on each device" "O_DIRECT read of a damaged block" \
		"reads from the good mirror" "names the rewritten copy" \
		"rewritten copy reads back alone" "damaged on both devices" "EIO" "O_DIRECT EIO"; do
		not_ok "raid1 data: $t (no file written)"
	done
fi
rm -f "$blob"

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

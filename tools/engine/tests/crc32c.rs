//! CRC-32C against published test vectors (RFC 3720 appendix B.4 and the common check value).

use ferrofs_engine::crc32c;

#[test]
fn check_value() {
    assert_eq!(crc32c::checksum(b"123456789"), 0xe306_9283);
}

#[test]
fn empty_input() {
    assert_eq!(crc32c::checksum(b""), 0);
}

#[test]
fn rfc3720_32_zero_bytes() {
    assert_eq!(crc32c::checksum(&[0u8; 32]), 0x8a91_36aa);
}

#[test]
fn rfc3720_32_ones_bytes() {
    assert_eq!(crc32c::checksum(&[0xffu8; 32]), 0x62a8_ab43);
}

#[test]
fn rfc3720_incrementing() {
    let data: Vec<u8> = (0u8..32).collect();
    assert_eq!(crc32c::checksum(&data), 0x46dd_794e);
}

#[test]
fn rfc3720_decrementing() {
    let data: Vec<u8> = (0u8..32).rev().collect();
    assert_eq!(crc32c::checksum(&data), 0x113f_db5c);
}

#[test]
fn rfc3720_iscsi_read_pdu() {
    let mut pdu = [0u8; 48];
    pdu[0] = 0x01;
    pdu[1] = 0xc0;
    pdu[16] = 0x14;
    pdu[22] = 0x04;
    pdu[27] = 0x14;
    pdu[31] = 0x18;
    pdu[32] = 0x28;
    pdu[40] = 0x02;
    assert_eq!(crc32c::checksum(&pdu), 0xd996_3a56);
}

/// Bit-at-a-time reference, to check the sliced tables on every length and alignment.
fn reference(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn matches_bitwise_reference_for_all_lengths_and_offsets() {
    let data: Vec<u8> = (0..600u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for start in 0..9 {
        for end in start..data.len() {
            assert_eq!(
                crc32c::checksum(&data[start..end]),
                reference(&data[start..end]),
                "{start}..{end}"
            );
        }
    }
}

#[test]
fn chained_updates_equal_one_pass() {
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
    for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
        let (a, b) = data.split_at(split);
        let chained = !crc32c::update(crc32c::update(!0, a), b);
        assert_eq!(chained, crc32c::checksum(&data));
    }
}

//! The superblock probe: recognises ferrofs, rejects everything else, never panics.

use ferrofs_engine::error::{errno, EngineError};
use ferrofs_engine::format::{self, Probe};

fn valid_superblock(version: u32) -> Vec<u8> {
    let mut block = vec![0u8; format::BLOCK_SIZE as usize];
    block[format::MAGIC_RANGE].copy_from_slice(&format::MAGIC);
    block[format::VERSION_RANGE].copy_from_slice(&version.to_le_bytes());
    let csum = format::superblock_csum(&block);
    block[format::CSUM_RANGE].copy_from_slice(&csum.to_le_bytes());
    block
}

#[test]
fn blank_device_is_not_ferrofs() {
    assert_eq!(format::probe(&[0u8; 4096]), Probe::NotFerrofs);
}

#[test]
fn valid_superblock_is_recognised() {
    assert_eq!(
        format::probe(&valid_superblock(1)),
        Probe::Ferrofs { version: 1 }
    );
}

#[test]
fn every_flipped_byte_is_detected() {
    let good = valid_superblock(1);
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        match format::probe(&bad) {
            Probe::NotFerrofs => assert!(format::MAGIC_RANGE.contains(&i), "byte {i}"),
            Probe::Damaged(err) => {
                assert_eq!(err.errno(), errno::EUCLEAN);
                assert!(
                    matches!(err, EngineError::Corrupt { block, .. } if block == format::SUPERBLOCK_OFFSET)
                );
            }
            Probe::Ferrofs { .. } => panic!("corruption at byte {i} not detected"),
        }
    }
}

#[test]
fn short_and_long_blocks_do_not_panic() {
    let good = valid_superblock(1);
    for len in [0, 1, 8, 15, 16, 19, 20, 4095] {
        let probe = format::probe(&good[..len]);
        assert!(
            matches!(probe, Probe::NotFerrofs | Probe::Damaged(_)),
            "len {len}: {probe:?}"
        );
    }
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(format::probe(&long), Probe::Damaged(_)));
}

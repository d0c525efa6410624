//! Chunk profiles: every logical block maps to the right number of copies, on the right
//! devices, inside the chunk's device extents, and no two blocks share a physical place.

mod common;

use std::collections::HashSet;

use common::Rng;
use ferrofs_engine::chunk::{Chunk, Kind, Profile, Stripe, STRIPE_LEN};
use ferrofs_engine::mem::FVec;

fn chunk(profile: Profile, devices: u64) -> Chunk {
    let n = profile.stripes_for(profile.devices_for(devices as usize).unwrap());
    let data = profile.data_stripes(n) as u64;
    let length = STRIPE_LEN * data * 8;
    let stripe_size = length / data;
    let mut stripes = FVec::new();
    for i in 0..n as u64 {
        let devid = if profile == Profile::Dup { 1 } else { i + 1 };
        // Put the extents at different offsets per device (and apart for dup).
        stripes
            .try_push(Stripe {
                devid,
                physical: (1 << 20) + i * stripe_size * 2 + devid * 4096,
            })
            .unwrap();
    }
    Chunk {
        logical: 1 << 30,
        length,
        kind: Kind::Data,
        profile,
        stripes,
    }
}

#[test]
fn every_profile_maps_every_block_correctly() {
    let cases = [
        (Profile::Single, 1),
        (Profile::Dup, 1),
        (Profile::Raid0, 1),
        (Profile::Raid0, 3),
        (Profile::Raid1, 2),
        (Profile::Raid1, 5),
        (Profile::Raid1c3, 3),
        (Profile::Raid10, 4),
        (Profile::Raid10, 7),
    ];
    for (profile, devices) in cases {
        let c = chunk(profile, devices);
        c.validate().unwrap();
        let stripe_size = c.stripe_size();
        let mut used = HashSet::new();
        let mut logical = c.logical;
        while logical < c.logical + c.length {
            let (copies, covered) = c.map(logical, 4096).unwrap();
            assert_eq!(covered, 4096);
            assert_eq!(copies.len(), profile.copies(), "{profile:?}");
            let devs: HashSet<u64> = copies.iter().map(|x| x.devid).collect();
            if profile.is_redundant_across_devices() {
                assert_eq!(
                    devs.len(),
                    copies.len(),
                    "{profile:?}: mirrors share a device"
                );
            }
            for copy in copies.iter() {
                let s = c.stripes.iter().find(|s| {
                    s.devid == copy.devid
                        && copy.physical >= s.physical
                        && copy.physical < s.physical + stripe_size
                });
                assert!(s.is_some(), "{profile:?}: copy outside every extent");
                assert!(
                    used.insert((copy.devid, copy.physical)),
                    "{profile:?}: two blocks on one place"
                );
            }
            logical += 4096;
        }
        assert_eq!(used.len() as u64, c.length / 4096 * profile.copies() as u64);
    }
}

/// A chunk is readable with some devices present exactly when every block maps to a
/// copy on one of them: checked for every set of present devices.
#[test]
fn readable_exactly_when_every_block_has_a_present_copy() {
    let cases = [
        (Profile::Single, 1),
        (Profile::Dup, 1),
        (Profile::Raid0, 3),
        (Profile::Raid1, 2),
        (Profile::Raid1c3, 3),
        (Profile::Raid10, 4),
        (Profile::Raid10, 6),
    ];
    for (profile, devices) in cases {
        let c = chunk(profile, devices);
        for present in 0u32..1 << devices {
            let up = |devid: u64| present & (1 << (devid - 1)) != 0;
            let mut every_block = true;
            let mut logical = c.logical;
            while logical < c.logical + c.length {
                let (copies, _) = c.map(logical, 4096).unwrap();
                every_block &= copies.iter().any(|x| up(x.devid));
                logical += 4096;
            }
            assert_eq!(
                c.is_readable(up),
                every_block,
                "{profile:?} over {devices} devices, present {present:#b}"
            );
        }
    }
}

#[test]
fn striped_ranges_stop_at_the_unit_boundary() {
    let c = chunk(Profile::Raid0, 3);
    let (_, covered) = c.map(c.logical + STRIPE_LEN - 4096, 1 << 20).unwrap();
    assert_eq!(covered, 4096);
    let c = chunk(Profile::Raid1, 2);
    let (_, covered) = c.map(c.logical, 1 << 40).unwrap();
    assert_eq!(covered, c.length);
    assert!(c.map(c.logical + c.length, 1).is_err());
    assert!(c.map(c.logical - 1, 1).is_err());
}

#[test]
fn encode_decode_round_trip() {
    for profile in Profile::ALL {
        let devices = profile.min_devices().max(2) as u64 + 2;
        let c = chunk(profile, devices);
        let mut buf = FVec::new();
        c.encode(&mut buf).unwrap();
        let (d, used) = Chunk::decode(c.logical, &buf, 0).unwrap();
        assert_eq!(d, c);
        assert_eq!(used, buf.len());
    }
}

#[test]
fn invalid_chunks_are_rejected() {
    let mut c = chunk(Profile::Raid1, 2);
    c.stripes[1].devid = c.stripes[0].devid;
    assert!(c.validate().is_err());
    let mut c = chunk(Profile::Raid10, 4);
    c.stripes.pop();
    assert!(c.validate().is_err());
    let mut c = chunk(Profile::Single, 1);
    c.length = 0;
    assert!(c.validate().is_err());
    // A stripe whose extent would run past the end of the device address space, or that
    // is not block-aligned.
    let mut c = chunk(Profile::Raid1, 2);
    c.stripes[1].physical = u64::MAX - 4095;
    assert_eq!(
        c.validate(),
        Err("chunk stripe out of the device address range")
    );
    let mut c = chunk(Profile::Raid1, 2);
    c.stripes[0].physical += 512;
    assert_eq!(
        c.validate(),
        Err("chunk stripe out of the device address range")
    );
}

#[test]
fn garbage_chunk_items_never_panic() {
    let mut rng = Rng::new(9);
    let mut good = FVec::new();
    chunk(Profile::Raid10, 6).encode(&mut good).unwrap();
    for _ in 0..100_000 {
        let mut buf = good.to_vec();
        let cut = rng.below(buf.len() as u64 + 1) as usize;
        buf.truncate(cut);
        for _ in 0..rng.below(4) {
            if !buf.is_empty() {
                let i = rng.below(buf.len() as u64) as usize;
                buf[i] = rng.next() as u8;
            }
        }
        if let Ok((c, _)) = Chunk::decode(1 << 30, &buf, 0) {
            // Whatever decodes must be valid and map without panicking.
            c.validate().unwrap();
            let _ = c.map(c.logical, 4096);
            let _ = c.map(c.logical + c.length - 1, 4096);
        }
    }
}

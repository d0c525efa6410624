//! The engine's fallible vector operations, against `Vec` as the model.

mod common;

use std::cmp::Ordering;

use common::Rng;
use ferrofs_engine::mem::{self, FVec};

fn fvec(items: &[u32]) -> FVec<u32> {
    FVec::try_from_slice(items).expect("allocation")
}

#[test]
fn insert_remove_match_vec() {
    let mut model: Vec<u32> = Vec::new();
    let mut v = FVec::new();
    let mut seed = 12345u32;
    for step in 0..2000u32 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let pos = (seed >> 8) as usize % (model.len() + 1);
        if seed % 3 == 0 && !model.is_empty() {
            let pos = pos % model.len();
            assert_eq!(v.remove(pos), Some(model.remove(pos)));
        } else {
            v.try_insert(pos, step).unwrap();
            model.insert(pos, step);
        }
        assert_eq!(&v[..], &model[..]);
    }
}

#[test]
fn out_of_range_is_an_error_not_a_panic() {
    let mut v = fvec(&[1, 2, 3]);
    assert!(v.try_insert(4, 9).is_err());
    assert_eq!(v.remove(3), None);
    assert!(v.try_split_off(4).is_err());
    assert_eq!(&v[..], &[1, 2, 3]);
}

#[test]
fn split_and_append_round_trip() {
    for at in 0..=5 {
        let mut v = fvec(&[1, 2, 3, 4, 5]);
        let mut tail = v.try_split_off(at).unwrap();
        assert_eq!(&v[..], &[1, 2, 3, 4, 5][..at]);
        assert_eq!(&tail[..], &[1, 2, 3, 4, 5][at..]);
        v.try_append(&mut tail).unwrap();
        assert!(tail.is_empty());
        assert_eq!(&v[..], &[1, 2, 3, 4, 5]);
    }
}

#[test]
fn resize_truncate_clear() {
    let mut v = fvec(&[7]);
    v.try_resize(4, 0).unwrap();
    assert_eq!(&v[..], &[7, 0, 0, 0]);
    v.truncate(2);
    assert_eq!(&v[..], &[7, 0]);
    v.truncate(5);
    assert_eq!(v.len(), 2);
    v.clear();
    assert!(v.is_empty());
}

/// Random vectors of every length up to 300, over a small value range (many duplicates)
/// and the full one.
fn random_inputs() -> Vec<Vec<u64>> {
    let mut rng = Rng::new(7);
    let mut inputs = Vec::new();
    for len in 0..300u64 {
        for range in [4, u64::MAX] {
            inputs.push((0..len).map(|_| rng.below(range)).collect());
        }
    }
    inputs
}

#[test]
fn sort_matches_std_sort() {
    for input in random_inputs() {
        let mut expect = input.clone();
        expect.sort_unstable();
        let mut got = input;
        mem::sort(&mut got);
        assert_eq!(got, expect);
    }
}

#[test]
fn sort_by_matches_std_sort_by() {
    for input in random_inputs() {
        let mut expect = input.clone();
        expect.sort_unstable_by(|a, b| b.cmp(a));
        let mut got = input;
        mem::sort_by(&mut got, |a, b| b.cmp(a));
        assert_eq!(got, expect);
    }
}

#[test]
fn sort_tuples_and_presorted() {
    let mut rng = Rng::new(11);
    let mut tuples: Vec<(u64, u64, usize)> = (0..1000)
        .map(|i| (rng.below(3), rng.below(50), i % 7))
        .collect();
    let mut expect = tuples.clone();
    expect.sort_unstable();
    mem::sort(&mut tuples);
    assert_eq!(tuples, expect);
    let mut ascending: Vec<u64> = (0..500).collect();
    mem::sort(&mut ascending);
    assert!(ascending.iter().copied().eq(0..500));
    let mut descending: Vec<u64> = (0..500).rev().collect();
    mem::sort(&mut descending);
    assert!(descending.iter().copied().eq(0..500));
}

#[test]
fn sort_empty_one_and_equal() {
    let mut empty: [u64; 0] = [];
    mem::sort(&mut empty);
    let mut one = [42u64];
    mem::sort(&mut one);
    assert_eq!(one, [42]);
    let mut same = [5u64; 33];
    mem::sort(&mut same);
    assert_eq!(same, [5; 33]);
}

#[test]
fn sort_by_an_inconsistent_order_does_not_panic() {
    let mut rng = Rng::new(3);
    let mut v: Vec<u64> = (0..200).map(|_| rng.below(1000)).collect();
    let mut before = v.clone();
    let mut coin = Rng::new(5);
    mem::sort_by(&mut v, |_, _| match coin.below(3) {
        0 => Ordering::Less,
        1 => Ordering::Equal,
        _ => Ordering::Greater,
    });
    // Still a permutation of the input.
    before.sort_unstable();
    v.sort_unstable();
    assert_eq!(v, before);
}

#[test]
fn count_matches_iterator_count() {
    let v: Vec<u64> = (0..1000).collect();
    for m in 1..10 {
        let filtered = || v.iter().filter(|&&x| x % m == 0);
        assert_eq!(mem::count(filtered()), filtered().count());
    }
    assert_eq!(mem::count(std::iter::empty::<u8>()), 0);
}

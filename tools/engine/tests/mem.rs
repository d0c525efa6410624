//! The engine's fallible vector operations, against `Vec` as the model.

use ferrofs_engine::mem::FVec;

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

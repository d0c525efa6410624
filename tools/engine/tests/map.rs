//! `U64Map` against `HashMap` as the model, including growth and backward-shift deletion.

mod common;

use std::collections::HashMap;

use common::Rng;
use ferrofs_engine::map::U64Map;

#[test]
fn random_operations_match_hashmap() {
    for seed in 0..10 {
        let mut rng = Rng::new(seed);
        let mut map = U64Map::new();
        let mut model = HashMap::new();
        // Small key ranges force long probe runs and many collisions.
        let range = [64, 1000, u64::MAX][seed as usize % 3];
        for step in 0..20_000u64 {
            let key = rng.below(range);
            match rng.below(4) {
                0 | 1 => assert_eq!(map.insert(key, step).unwrap(), model.insert(key, step)),
                2 => assert_eq!(map.remove(key), model.remove(&key)),
                _ => assert_eq!(map.get(key), model.get(&key)),
            }
            assert_eq!(map.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(map.get(*k), Some(v));
        }
        let mut keys: Vec<u64> = model.keys().copied().collect();
        keys.sort_unstable();
        assert_eq!(&map.sorted_keys().unwrap()[..], &keys[..]);
        assert_eq!(map.iter().count(), model.len());
    }
}

#[test]
fn clear_empties() {
    let mut map = U64Map::new();
    for i in 0..100 {
        map.insert(i, i).unwrap();
    }
    map.clear();
    assert!(map.is_empty());
    assert_eq!(map.get(5), None);
    map.insert(5, 6).unwrap();
    assert_eq!(map.get(5), Some(&6));
}

//! Seeded draws. Every choice the sandbox makes is a hash of the seed and of
//! what the choice is about (a tenant, a request, an account, a day …), never
//! the state of a generator shared between calls: the same question gets the
//! same answer in any order, in any process.

/// Added to the state before each draw (SplitMix64's increment).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finalizer: a bijection of `u64` that spreads every input bit
/// over every output bit.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a draw is about: the first element of its path, so that the draws
/// of two kinds of things never coincide.
pub(crate) mod about {
    pub const REQUEST: u64 = 1;
    pub const ACCOUNT: u64 = 2;
    pub const PIXEL: u64 = 3;
    pub const SPEND_DAY: u64 = 4;
    pub const METRICS_DAY: u64 = 5;
    pub const BREAKDOWN: u64 = 6;
    pub const BREAKDOWN_DAY: u64 = 7;
    pub const ID_KEY: u64 = 8;
}

/// A stream of draws about one thing.
#[derive(Debug, Clone)]
pub(crate) struct Draw {
    state: u64,
}

impl Draw {
    /// The draws about `path` (its parts in order) under `seed`.
    pub(crate) fn new(seed: u64, path: &[u64]) -> Draw {
        let state = path.iter().fold(mix(seed.wrapping_add(GAMMA)), |state, part| mix(state ^ mix(part.wrapping_add(GAMMA))));
        Draw { state }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in `0..n` (`n` ≥ 1), by multiplication rather than modulo.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `low..=high` (`high` ≥ `low`).
    pub(crate) fn between(&mut self, low: i64, high: i64) -> i64 {
        let span = (i128::from(high) - i128::from(low) + 1).clamp(1, i128::from(u64::MAX)) as u64;
        (i128::from(low) + i128::from(self.below(span))) as i64
    }

    /// True with probability `per_mille` / 1000.
    pub(crate) fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index drawn with the given weights (not all zero).
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut point = self.below(total);
        for (index, weight) in weights.iter().enumerate() {
            if point < u64::from(*weight) {
                return index;
            }
            point -= u64::from(*weight);
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_depend_on_the_seed_and_the_path_only() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut d = Draw::new(7, &[1, 2]);
                move |_| d.next_u64()
            })
            .collect();
        let mut again = Draw::new(7, &[1, 2]);
        assert_eq!(a, (0..4).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_ne!(Draw::new(7, &[1, 2]).next_u64(), Draw::new(8, &[1, 2]).next_u64());
        assert_ne!(Draw::new(7, &[1, 2]).next_u64(), Draw::new(7, &[2, 1]).next_u64());
    }

    #[test]
    fn bounded_draws_stay_in_bounds() {
        let mut d = Draw::new(1, &[]);
        for _ in 0..10_000 {
            assert!(d.below(7) < 7);
            let x = d.between(-3, 3);
            assert!((-3..=3).contains(&x));
            assert!(d.weighted(&[0, 5, 0, 1]) % 2 == 1);
        }
        assert_eq!(d.between(i64::MIN, i64::MIN), i64::MIN);
    }
}

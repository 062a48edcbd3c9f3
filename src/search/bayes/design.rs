//! Quasi-random points on the unit cube: a scrambled Halton sequence. Each dimension uses its own
//! prime base and every digit position its own random permutation of the digits (random digit
//! scrambling), so the points keep Halton's even spread while a seed picks which such set they are.
//! It serves both the initial design (point `k` of the experiment's sequence for trial `k`) and the
//! candidate sets the acquisition is scored on.

use rand::{Rng, RngExt};

/// Digit positions kept per dimension: enough for 2^-45 resolution in base 2, fewer in larger bases.
const RESOLUTION_BITS: f64 = 45.0;

/// A scrambled Halton sequence in a fixed number of dimensions.
#[derive(Clone, Debug)]
pub struct Halton {
    bases: Vec<u64>,
    /// `perms[dim][position]` is a permutation of `0..bases[dim]`.
    perms: Vec<Vec<Vec<u32>>>,
    /// `tails[dim][position]`: what the digits from `position` on add once the index has no digits
    /// left there (each a zero, which its permutation maps to `perm[0]`).
    tails: Vec<Vec<f64>>,
}

impl Halton {
    pub fn new<R: Rng + ?Sized>(dims: usize, rng: &mut R) -> Self {
        let bases = primes(dims);
        let perms = bases
            .iter()
            .map(|&b| {
                let positions = (RESOLUTION_BITS * std::f64::consts::LN_2 / (b as f64).ln()).ceil() as usize;
                (0..positions).map(|_| permutation(b as u32, rng)).collect()
            })
            .collect::<Vec<Vec<Vec<u32>>>>();
        let tails = bases
            .iter()
            .zip(&perms)
            .map(|(&base, perms)| {
                let mut tail = vec![0.0; perms.len() + 1];
                for q in (0..perms.len()).rev() {
                    tail[q] = tail[q + 1] + f64::from(perms[q][0]) * (base as f64).powi(-(q as i32 + 1));
                }
                tail
            })
            .collect();
        Self { bases, perms, tails }
    }

    /// The `index`-th point, in `[0, 1)` on every axis.
    pub fn point(&self, index: u64) -> Vec<f64> {
        self.bases
            .iter()
            .zip(&self.perms)
            .zip(&self.tails)
            .map(|((&base, perms), tail)| {
                let (mut rest, mut scale, mut value, mut position) = (index, 1.0 / base as f64, 0.0, 0);
                while rest > 0 && position < perms.len() {
                    value += f64::from(perms[position][(rest % base) as usize]) * scale;
                    rest /= base;
                    scale /= base as f64;
                    position += 1;
                }
                (value + tail[position]).min(1.0 - f64::EPSILON)
            })
            .collect()
    }
}

/// A uniform random permutation of `0..n` (Fisher–Yates).
fn permutation<R: Rng + ?Sized>(n: u32, rng: &mut R) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n).collect();
    for i in (1..p.len()).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}

/// The first `n` primes.
fn primes(n: usize) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::with_capacity(n);
    let mut candidate = 2u64;
    while out.len() < n {
        if out.iter().take_while(|&&p| p * p <= candidate).all(|&p| !candidate.is_multiple_of(p)) {
            out.push(candidate);
        }
        candidate += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn the_first_primes_are_the_bases() {
        assert_eq!(primes(6), [2, 3, 5, 7, 11, 13]);
    }

    #[test]
    fn halton_points_fill_every_stratum_of_each_axis() {
        let halton = Halton::new(3, &mut StdRng::seed_from_u64(5));
        // The first 2·3·5·… points of a (digit-scrambled) Halton sequence put one point in each of
        // the first `base` equal bins of every axis, per `base` points.
        for (axis, base) in [(0usize, 2usize), (1, 3), (2, 5)] {
            let mut bins = vec![0; base * base];
            for i in 0..(base * base) as u64 {
                let u = halton.point(i)[axis];
                assert!((0.0..1.0).contains(&u));
                bins[(u * (base * base) as f64) as usize] += 1;
            }
            assert!(bins.iter().all(|&c| c == 1), "axis {axis}: {bins:?}");
        }
    }

    #[test]
    fn another_seed_scrambles_differently() {
        let a = Halton::new(4, &mut StdRng::seed_from_u64(1)).point(3);
        let b = Halton::new(4, &mut StdRng::seed_from_u64(2)).point(3);
        assert_ne!(a, b);
    }
}

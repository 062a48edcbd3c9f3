//! Random search: independent uniform draws (log-uniform on log scales), seeded per trial number so
//! a resumed experiment draws what the first run would have; on a finite space no point twice.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Past, Result, Search, seen_keys};
use crate::space::{Assignment, Space, assignment_key};

/// Draws to try before concluding that a finite space is nearly used up.
const DRAWS_BEFORE_ENUMERATING: usize = 64;
/// The largest finite space we enumerate to find the points not yet tried.
const ENUMERATION_LIMIT: u128 = 1 << 20;

pub struct Random {
    space: Space,
    seed: u64,
}

impl Random {
    pub fn new(space: Space, seed: u64) -> Self {
        Self { space, seed }
    }

    fn rng_for(&self, trial_number: usize) -> StdRng {
        // SplitMix-style mixing so neighbouring trial numbers get unrelated streams.
        let mut z = self.seed ^ (trial_number as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        StdRng::seed_from_u64(z ^ (z >> 31))
    }
}

impl Search for Random {
    fn suggest(&mut self, history: &[Past], count: usize) -> Result<Vec<Assignment>> {
        let finite = self.space.grid_size().is_some();
        // Repeats are only possible (and only checked) on a finite space.
        let mut seen = if finite { seen_keys(history) } else { Default::default() };
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let mut rng = self.rng_for(history.len() + i);
            let fresh = (0..DRAWS_BEFORE_ENUMERATING)
                .map(|_| self.space.sample(&mut rng))
                .find(|p| !finite || !seen.contains(&assignment_key(p)));
            let point = match fresh {
                Some(p) => p,
                None => {
                    let unseen = self.space.unseen_points(&seen, ENUMERATION_LIMIT).unwrap_or_default();
                    if unseen.is_empty() {
                        break;
                    }
                    let pick = (rand::RngExt::random::<f64>(&mut rng) * unseen.len() as f64) as usize;
                    unseen[pick.min(unseen.len() - 1)].clone()
                }
            };
            if finite {
                seen.insert(assignment_key(&point));
            }
            out.push(point);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Outcome;
    use crate::spec::{ParameterSpec, ParameterType, Scale};

    fn space(kind: ParameterType, min: f64, max: f64, scale: Scale) -> Space {
        Space::new(&[ParameterSpec {
            name: "x".into(),
            kind,
            min: Some(min),
            max: Some(max),
            step: None,
            scale,
            values: vec![],
        }])
    }

    fn run(search: &mut Random, n: usize) -> Vec<Past> {
        let mut history = Vec::new();
        for _ in 0..n {
            let batch = search.suggest(&history, 1).unwrap();
            history.extend(batch.into_iter().map(|parameters| Past { parameters, outcome: Outcome::Loss(0.0) }));
        }
        history
    }

    #[test]
    fn the_same_seed_gives_the_same_suggestions_and_another_seed_does_not() {
        let s = space(ParameterType::Double, 0.0, 1.0, Scale::Linear);
        let a = run(&mut Random::new(s.clone(), 7), 20);
        let b = run(&mut Random::new(s.clone(), 7), 20);
        let c = run(&mut Random::new(s, 8), 20);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn random_never_repeats_a_point_on_a_finite_space_and_runs_dry_at_its_size() {
        let mut search = Random::new(space(ParameterType::Int, 1.0, 10.0, Scale::Linear), 3);
        let history = run(&mut search, 10);
        let keys = seen_keys(&history);
        assert_eq!(keys.len(), 10);
        assert!(search.suggest(&history, 5).unwrap().is_empty());
    }

    #[test]
    fn log_scale_draws_are_spread_evenly_over_decades() {
        let s = space(ParameterType::Double, 1e-4, 1.0, Scale::Log);
        let history = run(&mut Random::new(s, 11), 2000);
        let below_1e2 = history
            .iter()
            .filter(|p| matches!(p.parameters["x"], crate::space::ParamValue::Float(v) if v < 1e-2))
            .count();
        // Half of the four decades lie below 1e-2; a linear draw would put 1% there.
        assert!((850..1150).contains(&below_1e2), "{below_1e2} of 2000 below 1e-2");
    }
}

//! Hyperband (Li et al. 2018) with the resource set through a parameter, as Katib's hyperband
//! does: brackets of successive halving, each trial run with the named int parameter (epochs, say)
//! at its rung's resource, the top 1/eta of a rung re-run with eta times more.
//!
//! ```text
//! min 1, max 27, eta 3:  bracket s=3: 27×1 → 9×3 → 3×9 → 1×27    s=2: 12×3 → 4×9 → 1×27
//!                        s=1: 6×9 → 2×27                          s=0: 4×27      (then again)
//! ```
//! The trials follow one fixed schedule (bracket after bracket, rung after rung), so the `k`-th
//! trial's place depends on `k` alone and a resumed experiment goes on where it was: a rung-0 trial
//! is a random draw seeded by its number, a later rung's trial is the next best of the rung before
//! it (by value, failures last, ties to the earlier trial), and it waits until that rung is done.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Outcome, Past, Result, Search};
use crate::space::{Assignment, ParamValue, Space};

/// One bracket: its rungs' trial counts and resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bracket {
    pub s: u32,
    /// `(trials, resource)` of each rung.
    pub rungs: Vec<(usize, i64)>,
}

/// Hyperband's brackets for resources from `min` to `max`: `s_max = ⌊log_eta(max/min)⌋`, bracket
/// `s` starts `n = ⌈(s_max+1)/(s+1)·eta^s⌉` trials at `max·eta^-s` and keeps `⌊n·eta^-i⌋` at rung `i`,
/// with resource `max·eta^(i-s)` (rounded, at least `min`).
pub fn brackets(min: i64, max: i64, eta: u32) -> Vec<Bracket> {
    let (min, eta_f) = (min.max(1), f64::from(eta.max(2)));
    let mut s_max = 0u32;
    while (min as f64) * eta_f.powi(s_max as i32 + 1) <= max as f64 {
        s_max += 1;
    }
    (0..=s_max)
        .rev()
        .map(|s| {
            let n = ((f64::from(s_max + 1) / f64::from(s + 1)) * eta_f.powi(s as i32)).ceil();
            let rungs = (0..=s)
                .map(|i| {
                    let trials = (n * eta_f.powi(-(i as i32))).floor().max(1.0) as usize;
                    let resource = (max as f64 * eta_f.powi(i as i32 - s as i32)).round() as i64;
                    (trials, resource.clamp(min, max))
                })
                .collect();
            Bracket { s, rungs }
        })
        .collect()
}

/// One trial's place in the schedule.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Where the rung before this one starts (trial numbers from the start of the loop), and its size.
    previous: Option<(usize, usize)>,
    /// The place in this rung (0: the best of the rung before).
    place: usize,
    resource: i64,
}

pub struct Hyperband {
    space: Space,
    seed: u64,
    parameter: String,
    schedule: Vec<Slot>,
}

impl Hyperband {
    /// Hyperband over `space`, setting `parameter` (an int from `min` to `max`) per rung.
    pub fn new(space: Space, seed: u64, parameter: &str, min: i64, max: i64, eta: u32) -> Self {
        let mut schedule = Vec::new();
        for bracket in brackets(min, max, eta) {
            let mut previous = None;
            for &(trials, resource) in &bracket.rungs {
                let start = schedule.len();
                schedule.extend((0..trials).map(|place| Slot { previous, place, resource }));
                previous = Some((start, trials));
            }
        }
        Self { space, seed, parameter: parameter.to_string(), schedule }
    }

    fn rng_for(&self, trial_number: usize) -> StdRng {
        let mut z = self.seed ^ (trial_number as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        StdRng::seed_from_u64(z ^ (z >> 31))
    }

    /// The `k`-th trial's assignment; `None` while the rung before it is not done.
    fn at(&self, k: usize, history: &[Past]) -> Option<Assignment> {
        let total = self.schedule.len().max(1);
        let slot = self.schedule.get(k % total)?;
        let mut assignment = match slot.previous {
            None => self.space.sample(&mut self.rng_for(k)),
            Some((start, size)) => {
                let first = k - k % total + start;
                let rung = history.get(first..first + size)?;
                if rung.iter().any(|p| p.outcome == Outcome::Pending) {
                    return None;
                }
                let mut order: Vec<usize> = (0..rung.len()).collect();
                order.sort_by(|&a, &b| loss(&rung[a]).total_cmp(&loss(&rung[b])).then(a.cmp(&b)));
                rung[*order.get(slot.place)?].parameters.clone()
            }
        };
        assignment.insert(self.parameter.clone(), ParamValue::Int(slot.resource));
        Some(assignment)
    }
}

/// A trial's value for ranking a rung: failures last.
fn loss(past: &Past) -> f64 {
    match past.outcome {
        Outcome::Loss(v) => v,
        Outcome::Failed | Outcome::Pending => f64::INFINITY,
    }
}

impl Search for Hyperband {
    fn suggest(&mut self, history: &[Past], count: usize) -> Result<Vec<Assignment>> {
        Ok((history.len()..history.len() + count).map_while(|k| self.at(k, history)).collect())
    }

    /// Fewer suggestions than asked mean a rung is not done yet, not an exhausted space.
    fn exhausts_when_short(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ParameterSpec, ParameterType};

    #[test]
    fn brackets_follow_li_et_al_for_a_given_max_and_eta() {
        let b = brackets(1, 27, 3);
        let shape: Vec<(u32, Vec<(usize, i64)>)> = b.into_iter().map(|b| (b.s, b.rungs)).collect();
        assert_eq!(
            shape,
            vec![
                (3, vec![(27, 1), (9, 3), (3, 9), (1, 27)]),
                (2, vec![(12, 3), (4, 9), (1, 27)]),
                (1, vec![(6, 9), (2, 27)]),
                (0, vec![(4, 27)]),
            ]
        );
        // R = 81 in the paper's Table 1 (eta 3): n 81/34/15/8/5 at r 1/3/9/27/81.
        let firsts: Vec<(usize, i64)> = brackets(1, 81, 3).iter().map(|b| b.rungs[0]).collect();
        assert_eq!(firsts, [(81, 1), (34, 3), (15, 9), (8, 27), (5, 81)]);
        assert_eq!(brackets(2, 10, 2).iter().map(|b| b.s).collect::<Vec<_>>(), [2, 1, 0]);
    }

    fn hyperband() -> Hyperband {
        let space = Space::new(&[
            ParameterSpec::range("x", ParameterType::Double, 0.0, 1.0),
            ParameterSpec::range("epochs", ParameterType::Int, 1.0, 9.0),
        ]);
        Hyperband::new(space, 7, "epochs", 1, 9, 3)
    }

    fn x(a: &Assignment) -> f64 {
        match a["x"] {
            ParamValue::Float(v) => v,
            _ => panic!("x is a double"),
        }
    }

    #[test]
    fn a_rung_waits_for_the_one_before_then_re_runs_its_best_with_eta_times_the_resource() {
        // min 1, max 9, eta 3: bracket s=2: 9×1 → 3×3 → 1×9.
        let mut search = hyperband();
        let first = search.suggest(&[], 12).unwrap();
        assert_eq!(first.len(), 9, "rung 1 waits for rung 0's results");
        assert!(first.iter().all(|a| a["epochs"] == ParamValue::Int(1)));
        let mut history: Vec<Past> =
            first.iter().map(|a| Past { parameters: a.clone(), outcome: Outcome::Pending }).collect();
        for (i, p) in history.iter_mut().enumerate().take(8) {
            p.outcome = if i == 2 { Outcome::Failed } else { Outcome::Loss(x(&p.parameters)) };
        }
        assert_eq!(search.suggest(&history, 3).unwrap(), [], "one of rung 0 still runs");
        history[8].outcome = Outcome::Loss(x(&history[8].parameters));
        let next = search.suggest(&history, 5).unwrap();
        assert_eq!(next.len(), 3, "rung 1 holds 3, and rung 2 waits for it");
        let mut best: Vec<usize> = (0..9).filter(|&i| i != 2).collect();
        best.sort_by(|&a, &b| x(&history[a].parameters).total_cmp(&x(&history[b].parameters)));
        for (a, i) in next.iter().zip(&best) {
            assert_eq!(x(a), x(&history[*i].parameters), "the best of rung 0 in order, the failure last");
            assert_eq!(a["epochs"], ParamValue::Int(3));
        }
        assert_eq!(search.suggest(&history, 3).unwrap(), next, "the same history, the same suggestions");
    }
}

//! Maximizing the acquisition over the search box, as Optuna does: score a quasi-random candidate
//! set (plus, as BoTorch does, a quarter as many perturbations of the incumbent), then search
//! locally from the incumbent, the best candidate and a roulette pick of the others. A local search alternates L-BFGS (argmin) on the continuous axes, with the box kept by
//! clamping plus a quadratic penalty outside it, and a sweep over every level of each discrete or
//! categorical axis; it stops when a round no longer improves.

use rand::RngExt;
use rand::rngs::StdRng;

use super::acquisition::LogEi;
use super::design::Halton;
use super::encoding::Encoding;
use super::gp::Gp;
use super::lbfgs::{Limits, minimize};

/// Local-search rounds (continuous step, then level sweeps) at most.
const ROUNDS: usize = 3;
/// One continuous step: at most 15 L-BFGS iterations and 30 evaluations of log-EI, ending when
/// an iteration raises it by less than 1e-6 (Optuna's L-BFGS-B stops at a gradient of 1e-2).
const STEP: Limits = Limits { iterations: 15, evaluations: 30, gradient_tolerance: 1e-4, cost_tolerance: 1e-6 };
/// A round must raise the log acquisition by this much to continue.
const ROUND_TOLERANCE: f64 = 1e-6;
/// The fewest items worth a thread of their own in [`par_map`] (a thread costs ~50 µs to start).
const PER_THREAD: usize = 4;
/// The slope of the penalty that pulls an L-BFGS iterate back into the box.
const BOX_PENALTY: f64 = 1e4;

/// Log-EI under a GP posterior.
pub struct Acquisition<'a> {
    pub gp: &'a Gp,
    pub ei: LogEi,
}

impl Acquisition<'_> {
    pub fn value(&self, x: &[f64]) -> f64 {
        let (mean, var) = self.gp.predict(x);
        self.value_of(mean, var)
    }

    /// Log-EI for a posterior mean and variance.
    fn value_of(&self, mean: f64, var: f64) -> f64 {
        let v = self.ei.value(mean, var.sqrt());
        if v.is_nan() { f64::NEG_INFINITY } else { v }
    }

    fn value_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut d_var = vec![0.0; x.len()];
        let (mean, var) = self.gp.predict_with_gradient(x, grad, &mut d_var);
        let sd = var.sqrt();
        let (value, by_mean, by_sd) = self.ei.value_and_slopes(mean, sd);
        for (g, dv) in grad.iter_mut().zip(&d_var) {
            *g = by_mean * *g + by_sd * dv / (2.0 * sd);
        }
        value
    }
}

/// Where to look and how hard.
pub struct Plan<'a> {
    pub encoding: &'a Encoding,
    pub lower: &'a [f64],
    pub upper: &'a [f64],
    pub candidates: usize,
    pub restarts: usize,
}

/// The quasi-random candidates of one suggestion with what the GP's inputs alone tell of them
/// (kernel rows and posterior variances): everything but their means, so it can be computed
/// before the latest value arrives.
#[derive(Clone, Debug)]
pub struct Candidates {
    points: Vec<Vec<f64>>,
    rows: Vec<Vec<f64>>,
    pub(super) variances: Vec<f64>,
}

impl Candidates {
    /// Draws the candidates from `rng` and scores their variances under `gp` (values not needed).
    pub fn new(gp: &Gp, plan: &Plan<'_>, rng: &mut StdRng) -> Self {
        let points = candidates(plan, rng);
        let (rows, variances) = par_map(&points, |x| {
            let k = gp.cross(x);
            let v = gp.variance_of(&k);
            (k, v)
        })
        .into_iter()
        .unzip();
        Self { points, rows, variances }
    }
}

/// Scored points, best first: every local optimum found, then the candidates (made by
/// [`Candidates::new`] with the acquisition's GP, before its values or with them); `rng` draws the
/// points near the incumbent and the local searches' starts.
pub fn maximize(
    acq: &Acquisition<'_>,
    plan: &Plan<'_>,
    incumbent: &[f64],
    drawn: Candidates,
    rng: &mut StdRng,
) -> Vec<(f64, Vec<f64>)> {
    let Candidates { mut points, rows, variances } = drawn;
    let mut values: Vec<f64> = rows.iter().zip(&variances).map(|(k, &v)| acq.value_of(acq.gp.mean_of(k), v)).collect();
    let near = around(plan, incumbent, rng);
    values.extend(par_map(&near, |x| acq.value(x)));
    points.extend(near);
    let mut scored: Vec<(f64, Vec<f64>)> = values.into_iter().zip(points).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut starts = vec![incumbent.to_vec()];
    starts.extend(roulette(&scored, plan.restarts.saturating_sub(1), rng).into_iter().map(|i| scored[i].1.clone()));
    let mut found = par_map(&starts, |s| local_search(acq, plan, s.clone()));
    found.append(&mut scored);
    found.sort_by(|a, b| b.0.total_cmp(&a.0));
    found
}

/// Quasi-random points of the search box, snapped to the levels.
fn candidates(plan: &Plan<'_>, rng: &mut StdRng) -> Vec<Vec<f64>> {
    let categorical = plan.encoding.categorical();
    let halton = Halton::new(plan.encoding.dims(), rng);
    (0..plan.candidates as u64)
        .map(|i| {
            let mut x = halton.point(i);
            for (a, u) in x.iter_mut().enumerate().filter(|(a, _)| !categorical[*a]) {
                *u = plan.lower[a] + *u * (plan.upper[a] - plan.lower[a]);
            }
            plan.encoding.snap(&mut x);
            x
        })
        .collect()
}

/// Candidates near the incumbent: a quarter as many as the quasi-random ones, each moving every
/// ordered axis by a normal step (sd 5% of the box) and redrawing a categorical axis with
/// probability 1/d, so the best region is scored as densely as the rest of the box together.
fn around(plan: &Plan<'_>, incumbent: &[f64], rng: &mut StdRng) -> Vec<Vec<f64>> {
    let categorical = plan.encoding.categorical();
    let d = incumbent.len();
    (0..plan.candidates / 4)
        .map(|_| {
            let mut x = incumbent.to_vec();
            for a in 0..d {
                if categorical[a] {
                    if rng.random::<f64>() < 1.0 / d as f64 {
                        x[a] = rng.random::<f64>();
                    }
                } else {
                    let step: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                    x[a] = (x[a] + 0.05 * step * (plan.upper[a] - plan.lower[a])).clamp(plan.lower[a], plan.upper[a]);
                }
            }
            plan.encoding.snap(&mut x);
            x
        })
        .collect()
}

/// `items.map(f)` in order, on up to [`threads`] threads (items dealt round-robin, so
/// costly and cheap ones spread evenly). The result does not depend on the number of threads.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads().min(items.len() / PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    let share = move |t: usize| items.iter().skip(t).step_by(threads).map(f).collect::<Vec<R>>();
    let mut parts: Vec<std::vec::IntoIter<R>> = std::thread::scope(|scope| {
        // Shares 1.. on new threads, share 0 on this one.
        let handles: Vec<_> = (1..threads).map(|t| scope.spawn(move || share(t))).collect();
        let mut parts = vec![share(0).into_iter()];
        parts
            .extend(handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)).into_iter()));
        parts
    });
    (0..items.len()).filter_map(|i| parts[i % threads].next()).collect()
}

/// The threads a suggestion may use: every core but one, which stays with the rest of the
/// process and its clients (an API server answering requests, a client on the same machine).
/// Asked once: the standard library reads the cgroup's CPU quota from /proc and /sys every time.
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).max(1))
}

/// The best candidate, then `count - 1` more drawn with probability proportional to their EI.
fn roulette(scored: &[(f64, Vec<f64>)], count: usize, rng: &mut StdRng) -> Vec<usize> {
    let Some((top, _)) = scored.first() else { return Vec::new() };
    let mut weights: Vec<f64> = scored.iter().map(|(v, _)| (v - top).exp()).collect();
    let mut picks = Vec::with_capacity(count);
    for k in 0..count.min(scored.len()) {
        let total: f64 = weights.iter().sum();
        let pick = if k == 0 || total.is_nan() || total <= 0.0 {
            weights.iter().position(|&w| w > 0.0).unwrap_or(k)
        } else {
            let mut r = rng.random::<f64>() * total;
            weights
                .iter()
                .position(|&w| {
                    r -= w;
                    r < 0.0 && w > 0.0
                })
                .unwrap_or_else(|| weights.iter().rposition(|&w| w > 0.0).unwrap_or(k))
        };
        if let Some(w) = weights.get_mut(pick) {
            *w = 0.0;
        }
        picks.push(pick);
    }
    picks.sort_unstable();
    picks.dedup();
    picks
}

fn local_search(acq: &Acquisition<'_>, plan: &Plan<'_>, mut x: Vec<f64>) -> (f64, Vec<f64>) {
    let free = plan.encoding.free_axes();
    let mut value = acq.value(&x);
    // Rounds alternate the continuous step with level sweeps; without levels one step is all.
    let discrete = (0..x.len()).any(|axis| plan.encoding.levels(axis).is_some());
    for _ in 0..if discrete { ROUNDS } else { 1 } {
        let before = value;
        if !free.is_empty() {
            (value, x) = continuous_step(acq, plan, &free, x, value);
        }
        for axis in 0..x.len() {
            let Some(levels) = plan.encoding.levels(axis) else { continue };
            let keep = x[axis];
            let mut best = (value, keep);
            for &u in levels {
                x[axis] = u;
                let v = acq.value(&x);
                if v > best.0 {
                    best = (v, u);
                }
            }
            (value, x[axis]) = best;
        }
        if value.is_nan() || value <= before + ROUND_TOLERANCE {
            break;
        }
    }
    (value, x)
}

/// One L-BFGS run on the free axes; the start back when it does not improve. L-BFGS knows no
/// bounds: log-EI is taken at the point clamped into the box, plus a quadratic penalty on the
/// distance outside it, so the run is pushed back onto the box.
fn continuous_step(acq: &Acquisition<'_>, plan: &Plan<'_>, free: &[usize], x: Vec<f64>, value: f64) -> (f64, Vec<f64>) {
    let clamped = |z: &[f64]| {
        let mut p = x.clone();
        for (&a, &v) in free.iter().zip(z) {
            p[a] = v.clamp(plan.lower[a], plan.upper[a]);
        }
        p
    };
    let objective = |z: &[f64]| {
        let p = clamped(z);
        let mut full = vec![0.0; p.len()];
        let mut cost = -acq.value_and_gradient(&p, &mut full);
        let mut grad: Vec<f64> = free.iter().map(|&a| -full[a]).collect();
        for (k, &a) in free.iter().enumerate() {
            let outside = z[k] - p[a];
            cost += BOX_PENALTY * outside * outside;
            grad[k] += 2.0 * BOX_PENALTY * outside;
        }
        (cost, grad)
    };
    let (_, z) = minimize(objective, free.iter().map(|&a| x[a]).collect(), STEP);
    let mut moved = clamped(&z);
    plan.encoding.snap(&mut moved);
    let v = acq.value(&moved);
    if v > value { (v, moved) } else { (value, x) }
}

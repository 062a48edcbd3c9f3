//! Bayesian optimization (`algorithm.name: bayesian`): a Gaussian process models the objective on
//! the unit cube and each suggestion maximizes log expected improvement under it (Optuna's
//! GPSampler recipe).
//!
//! ```text
//! history ─▶ data: values, failures (as the worst value), pending, all on [0,1]^d
//!   trial < initialPoints ─▶ scrambled Halton design point
//!   else ─▶ standardize, and warp ─▶ fit Matérn 5/2 ARD to each (MAP, L-BFGS) ─▶ GP on the
//!           values as they are or warped, whichever explains them better
//!        ─▶ pending points as fantasies (Kriging believer: the posterior mean as their value)
//!        ─▶ per suggestion: quasi-random candidates + local searches maximize log-EI
//!        ─▶ a fresh point (else random search's) ─▶ fantasy for the next one of the batch
//! ```
//! Determinism: the `k`-th suggestion depends only on the seed, `k` and the history. Up to
//! `COLD_LIMIT` finished trials every suggestion fits afresh. Past it, the hyperparameters are
//! refitted only at checkpoints, the first `m` finished trials with `m` on a fixed schedule, each
//! fit warm-started from the one at the checkpoint before (and from the default start at the
//! first checkpoint of each doubling of the history), so a fresh instance given the same history
//! fits the same chain (once) and suggests the same points.
//!
//! Latency: past `COLD_LIMIT`, a suggestion's hyperparameters are those fitted at the checkpoint
//! of the finished trials but the latest (whose value still shapes the posterior, as every
//! other). So they can be fitted before that result arrives ([`Search::anticipate`], while the
//! client evaluates), and with them everything the values do not enter: `K⁻¹` on the inputs (the
//! pending point among them) and the quasi-random candidates' variances. The suggestion that
//! follows the result computes `α = K⁻¹y`, the candidates' means and the local searches. A few
//! more points move the MAP hyperparameters little; GP libraries commonly refit only every few
//! observations, and a fit from the last one's optimum takes a few L-BFGS steps.
//!
//! Scale: the exact GP costs O(n³) to fit and O(n²) per acquisition value. Up to [`MODEL_LIMIT`]
//! finished trials the model is exact and global. Past it, the model is local: the
//! `MODEL_LIMIT` points nearest the incumbent, with the search kept inside their bounding box (a
//! trust region around the incumbent, as in TuRBO); the hyperparameters are fitted on the
//! nearest [`FIT_LIMIT`] of those. With both, a suggestion at 1,000 trials in 6 dimensions takes
//! ~4 ms on one core (a resumed experiment's first one, which refits the checkpoints since 512
//! trials, ~75 ms; `benches/search.rs`).

mod acquisition;
mod data;
mod design;
mod encoding;
mod fit;
mod gp;
mod kernel;
mod lbfgs;
mod linalg;
mod optimize;
mod settings;
mod transform;

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use rand::SeedableRng;
use rand::rngs::StdRng;

use self::acquisition::LogEi;
pub use self::data::MODEL_LIMIT;
use self::data::{Observations, Training};
use self::design::Halton;
use self::encoding::Encoding;
use self::fit::{FitData, fit};
use self::gp::Gp;
use self::kernel::Hyper;
use self::optimize::{Acquisition, Candidates, Plan, maximize};
pub use self::settings::{SETTINGS, Settings, SettingsError, check as check_settings};
use super::{Outcome, Past, Random, Result, Search, seen_keys};
use crate::space::{Assignment, Space, assignment_key};

/// The hyperparameters are fitted on at most this many points (nearest the incumbent): the fit
/// factors its matrix at every L-BFGS step, so it is the costliest part past ~100 trials.
pub const FIT_LIMIT: usize = 100;
/// Up to this many finished trials every suggestion fits from the default start (and costs
/// little); past it, the fits are made at checkpoints only: every 2 trials up to 32, every 4 up to
/// 64, and so on (`checkpoint`).
const COLD_LIMIT: usize = 16;
/// L-BFGS iterations of a fit at most (the tolerances end one from a warm start far sooner).
const FIT_ITERS: u64 = 100;
/// Points closer than this on every unit axis count as the same point.
const DUPLICATE_DISTANCE: f64 = 1e-9;
/// Salts that keep the design, candidate and fallback random streams apart.
const DESIGN_STREAM: u64 = 0x5EED_DE51;
const CANDIDATE_STREAM: u64 = 0xCA4D_1DA7;
const SEARCH_STREAM: u64 = 0x5EA2_C4ED;

/// Bayesian optimization over a space.
#[derive(Clone, Debug)]
pub struct Bayesian {
    space: Space,
    encoding: Encoding,
    seed: u64,
    settings: Settings,
    /// The hyperparameters fitted at the latest checkpoint (made ahead by `anticipate`, or by a
    /// suggestion), the warm start of the next.
    fitted: Option<Fitted>,
    /// What `anticipate` computed of the next suggestion's model before its latest value.
    ahead: Option<Ahead>,
}

/// The model of trial `trial`'s suggestion before the value it waits for: the GP on its inputs
/// and its candidates' variances. Used only when the suggestion's GP has exactly these inputs and
/// hyperparameters (and no fantasy), so a suggestion is the same with or without it.
#[derive(Clone, Debug)]
struct Ahead {
    trial: usize,
    gp: Gp,
    candidates: Candidates,
}

/// Hyperparameters fitted to the first `size` finished trials, which `fingerprint` identifies.
#[derive(Clone, Debug)]
struct Fitted {
    size: usize,
    fingerprint: u64,
    hyper: Hyper,
    warp: bool,
}

/// The model of one `suggest` call, grown by a fantasy after each point it picks.
struct Model {
    gp: Gp,
    /// The first suggestion's candidates, scored ahead.
    ready: Option<Candidates>,
    ei: LogEi,
    incumbent: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
}

impl Model {
    /// Kriging believer: a pending point is taken to have the posterior mean as its value, which
    /// keeps the mean and shrinks the variance around it (and may become the best value).
    fn believe(&mut self, x: &[f64]) {
        let (mean, _) = self.gp.predict(x);
        if self.gp.add(x, mean) {
            self.ei.best = self.ei.best.min(mean);
        }
    }
}

/// What a batch must stay clear of: the history and the points already picked.
struct Taken {
    keys: HashSet<String>,
    units: Vec<Vec<f64>>,
    picked: Vec<Assignment>,
}

impl Bayesian {
    /// Bayesian search over `space`; `settings` are the spec's `algorithm.settings`.
    pub fn new(space: Space, seed: u64, settings: &BTreeMap<String, serde_json::Value>) -> Result<Self, SettingsError> {
        let settings = Settings::parse(settings)?;
        Ok(Self { encoding: Encoding::new(&space), space, seed, settings, fitted: None, ahead: None })
    }

    /// A random stream for one trial number and purpose (SplitMix-style mixing, as random search).
    fn stream(&self, trial: usize, salt: u64) -> StdRng {
        let mut z = (self.seed ^ salt).wrapping_add((trial as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        StdRng::seed_from_u64(z ^ (z >> 31))
    }

    /// Point `trial` of the experiment's scrambled Halton sequence, snapped to the levels.
    fn design_point(&self, trial: usize) -> Vec<f64> {
        let halton = Halton::new(self.encoding.dims(), &mut self.stream(0, DESIGN_STREAM));
        let mut x = halton.point(trial as u64);
        self.encoding.snap(&mut x);
        x
    }

    /// The model for the suggestion of trial `trial` onwards.
    fn model(&mut self, obs: &Observations, trial: usize) -> Option<Model> {
        let (dims, categorical) = (self.encoding.dims(), self.encoding.categorical());
        if dims == 0 {
            return None;
        }
        let training = Training::new(&obs.finished, dims, &categorical, MODEL_LIMIT)?;
        let (hyper, warp) = self.hyperparameters(obs, &training);
        let targets = training.targets(warp);
        let ahead = self.ahead.take().filter(|a| a.trial == trial && a.gp.has_inputs(&training.x, &hyper));
        let (gp, ready) = match ahead {
            Some(a) => (a.gp.with_values(targets.y.clone())?, obs.pending.is_empty().then_some(a.candidates)),
            None => (Gp::new(training.x.clone(), targets.y.clone(), dims, &hyper, &categorical)?, None),
        };
        let incumbent = training.x[training.best * dims..(training.best + 1) * dims].to_vec();
        let ei = LogEi { best: targets.y[training.best], xi: self.settings.xi };
        let mut model = Model { gp, ready, ei, incumbent, lower: training.lower, upper: training.upper };
        for p in &obs.pending {
            model.believe(p);
        }
        Some(model)
    }

    /// The MAP hyperparameters and whether the values are warped: fitted from the default start
    /// while the history is short, else those fitted at the checkpoint of the finished trials but
    /// the latest.
    fn hyperparameters(&mut self, obs: &Observations, training: &Training) -> (Hyper, bool) {
        let n = obs.finished.len();
        let lagged = if n > COLD_LIMIT { self.fit_at_checkpoint(&obs.finished[..n - 1]) } else { None };
        lagged.unwrap_or_else(|| self.fit_evident(training, &Hyper::initial(self.encoding.dims()), None, FIT_ITERS))
    }

    /// The hyperparameters fitted at the checkpoint of `finished` (its first
    /// `checkpoint(len)` trials): from the default start at the first checkpoint of a doubling,
    /// else from those fitted at the checkpoint before, with the values presented as there
    /// (plain or warped; chosen afresh at each cold fit). A running search keeps the latest fit,
    /// so it fits each checkpoint once; a fresh one fits the chain from the doubling's first
    /// checkpoint (8 fits at most). `None` without two valued trials.
    fn fit_at_checkpoint(&mut self, finished: &[(Vec<f64>, Option<f64>)]) -> Option<(Hyper, bool)> {
        let (dims, categorical) = (self.encoding.dims(), self.encoding.categorical());
        let size = checkpoint(finished.len());
        let fingerprint = fingerprint_of(&finished[..size]);
        if let Some(f) = self.fitted.as_ref().filter(|f| f.size == size && f.fingerprint == fingerprint) {
            return Some((f.hyper.clone(), f.warp));
        }
        let prefix = Training::new(&finished[..size], dims, &categorical, MODEL_LIMIT)?;
        let cold = size <= COLD_LIMIT || size.is_power_of_two();
        let before = if cold { None } else { self.fit_at_checkpoint(&finished[..size - 1]) };
        let (hyper, warp) = match before {
            Some((start, warp)) => self.fit_evident(&prefix, &start, Some(warp), FIT_ITERS),
            None => self.fit_evident(&prefix, &Hyper::initial(dims), None, FIT_ITERS),
        };
        self.fitted = Some(Fitted { size, fingerprint, hyper: hyper.clone(), warp });
        Some((hyper, warp))
    }

    /// Fits the hyperparameters to the plain and to the warped values (or to the given one) and
    /// keeps the presentation whose fit explains the raw values best: the log posterior plus the
    /// log slopes of the transform (the change of variables back to the raw values).
    fn fit_evident(&self, training: &Training, start: &Hyper, warp: Option<bool>, iters: u64) -> (Hyper, bool) {
        let (dims, categorical) = (self.encoding.dims(), self.encoding.categorical());
        let options = warp.map_or(vec![false, true], |w| vec![w]);
        let mut best: Option<(f64, Hyper, bool)> = None;
        for warp in options {
            let (x, y, log_slope) = training.head(FIT_LIMIT, dims, warp);
            let (loss, hyper) =
                fit(&FitData { x, y, dims, categorical: &categorical }, std::slice::from_ref(start), iters);
            let evidence = -loss + log_slope.iter().sum::<f64>();
            if best.as_ref().is_none_or(|(e, _, _)| evidence > *e) {
                best = Some((evidence, hyper, warp));
            }
        }
        best.map_or((start.clone(), false), |(_, h, w)| (h, w))
    }

    /// The best fresh point the model proposes for `trial`, if any.
    fn propose(&self, model: &mut Model, trial: usize, taken: &Taken) -> Option<(Vec<f64>, Assignment)> {
        let plan = self.plan(&model.lower, &model.upper);
        let drawn = model.ready.take().unwrap_or_else(|| self.candidates(&model.gp, &plan, trial));
        let acq = Acquisition { gp: &model.gp, ei: model.ei };
        let mut rng = self.stream(trial, SEARCH_STREAM);
        maximize(&acq, &plan, &model.incumbent, drawn, &mut rng).into_iter().find_map(|(_, x)| self.fresh(x, taken))
    }

    /// Where and how hard to maximize the acquisition: inside the box `lower..upper`.
    fn plan<'a>(&'a self, lower: &'a [f64], upper: &'a [f64]) -> Plan<'a> {
        Plan {
            encoding: &self.encoding,
            lower,
            upper,
            candidates: self.settings.candidates,
            restarts: self.settings.restarts,
        }
    }

    /// Trial `trial`'s quasi-random candidates, with their variances under `gp`.
    fn candidates(&self, gp: &Gp, plan: &Plan<'_>, trial: usize) -> Candidates {
        Candidates::new(gp, plan, &mut self.stream(trial, CANDIDATE_STREAM))
    }

    /// The point and its assignment, unless it repeats one already taken.
    fn fresh(&self, x: Vec<f64>, taken: &Taken) -> Option<(Vec<f64>, Assignment)> {
        let near = |u: &Vec<f64>| u.iter().zip(&x).all(|(a, b)| (a - b).abs() < DUPLICATE_DISTANCE);
        if taken.units.iter().any(near) {
            return None;
        }
        let assignment = self.space.from_unit(&x);
        (!taken.keys.contains(&assignment_key(&assignment))).then_some((x, assignment))
    }

    /// Random search's pick for the next trial, clear of the history and the batch so far.
    fn fallback(&self, history: &[Past], taken: &Taken) -> Option<(Vec<f64>, Assignment)> {
        let mut extended = history.to_vec();
        extended.extend(taken.picked.iter().map(|p| Past { parameters: p.clone(), outcome: Outcome::Pending }));
        let mut random = Random::new(self.space.clone(), self.seed);
        let assignment = random.suggest(&extended, 1).ok()?.pop()?;
        Some((self.space.to_unit(&assignment)?, assignment))
    }
}

impl Search for Bayesian {
    fn suggest(&mut self, history: &[Past], count: usize) -> Result<Vec<Assignment>> {
        let obs = Observations::new(&self.space, history);
        let mut taken = Taken { keys: seen_keys(history), units: obs.seen.clone(), picked: Vec::new() };
        let modelled = history.len() + count > self.settings.initial_points && obs.valued() >= 2;
        let mut model = if modelled { self.model(&obs, history.len()) } else { None };
        for i in 0..count {
            let trial = history.len() + i;
            let proposal = match model.as_mut() {
                Some(m) if trial >= self.settings.initial_points => self.propose(m, trial, &taken),
                _ => self.fresh(self.design_point(trial), &taken),
            };
            let Some((x, assignment)) = proposal.or_else(|| self.fallback(history, &taken)) else { break };
            if let Some(m) = model.as_mut() {
                m.believe(&x);
            }
            taken.keys.insert(assignment_key(&assignment));
            taken.units.push(x);
            taken.picked.push(assignment);
        }
        Ok(taken.picked)
    }

    /// Fits the hyperparameters the suggestion after the next result will use (at a checkpoint)
    /// and, when that result is the only one awaited, the GP on the inputs and the candidates'
    /// variances.
    fn anticipate(&mut self, history: &[Past]) {
        let obs = Observations::new(&self.space, history);
        let (n, dims) = (obs.finished.len(), self.encoding.dims());
        if n < COLD_LIMIT || dims == 0 {
            return;
        }
        let Some((hyper, _)) = self.fit_at_checkpoint(&obs.finished) else { return };
        // The next model's rows: the finished trials and the pending one, in history order while
        // `Training` keeps that order, over the whole cube.
        let [pending] = obs.pending.as_slice() else { return };
        if !Training::in_history_order(n + 1, MODEL_LIMIT) {
            return;
        }
        let x: Vec<f64> = obs.finished.iter().map(|(x, _)| x).chain([pending]).flatten().copied().collect();
        let Some(gp) = Gp::inputs(x, dims, &hyper, &self.encoding.categorical()) else { return };
        let (lower, upper) = (vec![0.0; dims], vec![1.0; dims]);
        let candidates = self.candidates(&gp, &self.plan(&lower, &upper), history.len());
        self.ahead = Some(Ahead { trial: history.len(), gp, candidates });
    }

    fn costly(&self) -> bool {
        true
    }
}

/// The checkpoint of `n` finished trials: `n` rounded down to a multiple of 1/16 of the power of
/// two at or above it (every 8 trials near 100, every 64 near 1,000): 8 refits a doubling.
fn checkpoint(n: usize) -> usize {
    let step = (n.next_power_of_two() / 16).max(1);
    n / step * step
}

/// Identifies finished trials (points and values, failures as such), so a cached fit is used only
/// for the trials it was fitted to; hashing them costs far less than building their `Training`.
fn fingerprint_of(finished: &[(Vec<f64>, Option<f64>)]) -> u64 {
    let mut h = DefaultHasher::new();
    for (x, v) in finished {
        x.iter().for_each(|u| u.to_bits().hash(&mut h));
        v.map(f64::to_bits).hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests;

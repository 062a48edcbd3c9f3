//! Fitting the kernel hyperparameters: maximize the log marginal likelihood plus weak priors
//! (Optuna's: Gamma(2, 1) on the signal variance, Gamma(1.1, 30) on the noise variance, and
//! `-(0.1/θ + 0.1·θ)` on each inverse squared length scale θ), with L-BFGS (argmin) in log space
//! from each given start; the best end point wins.
//!
//! ```text
//! log p(y) = -½ yᵀα - Σ log L_ii - n/2 log 2π          α = K⁻¹y
//! ∂/∂p     = ½ tr((ααᵀ - K⁻¹) ∂K/∂p)
//! ```

use super::kernel::{Hyper, Kernel, NOISE_FLOOR, axis_sq_dist, matern52_and_slope};
use super::lbfgs::{Limits, minimize};
use super::linalg::{Packed, dot, row_start};
/// Gradient norm at which the fit stops (Optuna uses 1e-2 on the same objective).
const GRADIENT_TOLERANCE: f64 = 1e-3;
/// The loss where the kernel matrix cannot be factored: large, so line searches step back.
const FAILED_LOSS: f64 = 1e12;
/// Stop when an iteration improves the loss by less than this (it is O(n), in nats).
const COST_TOLERANCE: f64 = 1e-7;
/// Loss evaluations allowed per L-BFGS iteration, on average over a run.
const EVALS_PER_ITER: u64 = 3;
const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// The data a fit sees: inputs row-major, `dims` per point, and standardized targets.
pub struct FitData<'a> {
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub dims: usize,
    pub categorical: &'a [bool],
}

/// The maximum a posteriori hyperparameters, from the best of the L-BFGS runs started at `starts`
/// (at most `max_iters` iterations each), with their loss (the negative log posterior).
pub fn fit(data: &FitData<'_>, starts: &[Hyper], max_iters: u64) -> (f64, Hyper) {
    let problem = Posterior::new(data);
    let mut best: Option<(f64, Hyper)> = None;
    for start in starts {
        let (loss, hyper) = problem.minimize(start, max_iters);
        if best.as_ref().is_none_or(|(b, _)| loss < *b) {
            best = Some((loss, hyper));
        }
    }
    best.unwrap_or_else(|| (f64::INFINITY, Hyper::initial(data.dims)))
}

/// The negative log posterior of the hyperparameters, with its gradient.
struct Posterior<'a> {
    y: Vec<f64>,
    /// The squared distance on each axis of every pair `i > j` (in [`pairs`] order, `dims` each).
    pair_sq_dists: Vec<f64>,
    n: usize,
    data: &'a FitData<'a>,
}

impl<'a> Posterior<'a> {
    fn new(data: &'a FitData<'a>) -> Self {
        let n = data.y.len();
        let pair_sq_dists = pairs(n)
            .flat_map(|(i, j)| {
                (0..data.dims).map(move |a| {
                    axis_sq_dist(data.x[i * data.dims + a], data.x[j * data.dims + a], data.categorical[a])
                })
            })
            .collect();
        Self { y: data.y.to_vec(), pair_sq_dists, n, data }
    }

    fn minimize(&self, start: &Hyper, max_iters: u64) -> (f64, Hyper) {
        let limits = Limits {
            iterations: max_iters,
            evaluations: max_iters * EVALS_PER_ITER,
            gradient_tolerance: GRADIENT_TOLERANCE,
            cost_tolerance: COST_TOLERANCE,
        };
        let (loss, p) = minimize(|p| self.evaluate(p), start.flat(), limits);
        (loss, Hyper::from_flat(&p))
    }

    /// Loss and gradient at a flat parameter vector (clamped into bounds first).
    fn evaluate(&self, p: &[f64]) -> (f64, Vec<f64>) {
        self.loss_and_gradient(&Hyper::from_flat(p)).unwrap_or((FAILED_LOSS, vec![0.0; p.len()]))
    }

    fn loss_and_gradient(&self, hyper: &Hyper) -> Option<(f64, Vec<f64>)> {
        let (n, dims) = (self.n, self.data.dims);
        let kernel = Kernel::new(hyper, self.data.categorical);
        let noise_excess = hyper.log_noise.exp();
        let noise = NOISE_FLOOR + noise_excess;
        // Pairs i > j in packed order, so the lower triangle is the pairs with the diagonal between.
        let r2: Vec<f64> = self
            .pair_sq_dists
            .chunks_exact(dims)
            .map(|d| d.iter().zip(&kernel.inv_sq_ls).map(|(d, t)| d * t).sum())
            .collect();
        let (unit, slope): (Vec<f64>, Vec<f64>) = r2.iter().map(|&r| matern52_and_slope(r)).unzip();
        let mut k = Vec::with_capacity(row_start(n));
        for i in 0..n {
            k.extend(unit[row_start(i) - i..row_start(i + 1) - i - 1].iter().map(|u| kernel.scale * u));
            k.push(kernel.scale + noise);
        }
        let l = Packed::new(n, k).cholesky()?;
        let mut alpha = self.y.clone();
        l.forward(&mut alpha);
        let quad = dot(&alpha, &alpha);
        l.backward(&mut alpha);
        let log_det: f64 = l.diagonal().map(|v| 2.0 * v.ln()).sum();
        let lml = -0.5 * quad - 0.5 * log_det - 0.5 * n as f64 * LOG_2PI;
        // W = ααᵀ - K⁻¹; each gradient is ½ Σ W ∘ ∂K, twice each pair plus the diagonal.
        let k_inv = l.inverse_of_product();
        let mut grad = vec![0.0; dims + 2];
        for (p, (i, j)) in pairs(n).enumerate() {
            let wij = alpha[i] * alpha[j] - k_inv.at(i, j);
            let slope = kernel.scale * slope[p] * wij;
            for (a, (g, d)) in grad[..dims].iter_mut().zip(&self.pair_sq_dists[p * dims..(p + 1) * dims]).enumerate() {
                *g += slope * kernel.inv_sq_ls[a] * d;
            }
            grad[dims] += wij * kernel.scale * unit[p];
        }
        let trace: f64 = (0..n).map(|i| alpha[i] * alpha[i] - k_inv.at(i, i)).sum();
        grad[dims] += 0.5 * trace * kernel.scale;
        grad[dims + 1] = 0.5 * trace * noise_excess;
        let (prior, prior_grad) = log_prior(&kernel, noise, noise_excess);
        let loss = -(lml + prior);
        let grad = grad.iter().zip(&prior_grad).map(|(g, p)| -(g + p)).collect::<Vec<_>>();
        (loss.is_finite() && grad.iter().all(|g| g.is_finite())).then_some((loss, grad))
    }
}

/// Every pair `(i, j)` with `n > i > j`, in a fixed order.
fn pairs(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).flat_map(|i| (0..i).map(move |j| (i, j)))
}

/// Optuna's weak priors, and their gradient in the log parameters.
fn log_prior(kernel: &Kernel, noise: f64, noise_excess: f64) -> (f64, Vec<f64>) {
    let mut value = 0.0;
    let mut grad: Vec<f64> = kernel
        .inv_sq_ls
        .iter()
        .map(|&t| {
            value -= 0.1 / t + 0.1 * t;
            0.1 / t - 0.1 * t
        })
        .collect();
    let s = kernel.scale;
    value += s.ln() - s; // Gamma(2, 1)
    grad.push(1.0 - s);
    value += 0.1 * noise.ln() - 30.0 * noise; // Gamma(1.1, 30)
    grad.push((0.1 / noise - 30.0) * noise_excess);
    (value, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_1d() -> (Vec<f64>, Vec<f64>) {
        let x: Vec<f64> = (0..12).map(|i| i as f64 / 11.0).collect();
        let y: Vec<f64> = x.iter().map(|v| (8.0 * v).sin()).collect();
        (x, y)
    }

    #[test]
    fn the_loss_gradient_matches_finite_differences() {
        let x = vec![0.1, 0.0, 0.5, 1.0, 0.9, 0.0, 0.3, 1.0, 0.7, 0.0];
        let y = vec![0.5, -1.0, 1.2, 0.1, -0.4];
        let data = FitData { x: &x, y: &y, dims: 2, categorical: &[false, true] };
        let post = Posterior::new(&data);
        let p = vec![0.3, -0.5, 0.2, -3.0];
        let (_, grad) = post.evaluate(&p);
        for i in 0..p.len() {
            let h = 1e-6;
            let (mut a, mut b) = (p.clone(), p.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (post.evaluate(&a).0 - post.evaluate(&b).0) / (2.0 * h);
            assert!((fd - grad[i]).abs() < 1e-4 * fd.abs().max(1.0), "param {i}: {fd} vs {}", grad[i]);
        }
    }

    #[test]
    fn fitting_finds_a_short_length_scale_for_a_wiggly_function() {
        let (x, y) = data_1d();
        let data = FitData { x: &x, y: &y, dims: 1, categorical: &[false] };
        let start = Hyper::initial(1);
        let (_, fitted) = fit(&data, std::slice::from_ref(&start), 100);
        let post = Posterior::new(&data);
        assert!(post.evaluate(&fitted.flat()).0 < post.evaluate(&start.flat()).0);
        assert!(fitted.log_inv_sq_ls[0] > 1.0, "{fitted:?}");
        assert!(fitted.noise() < 1e-2, "{fitted:?}");
    }
}

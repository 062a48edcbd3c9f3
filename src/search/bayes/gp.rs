//! The Gaussian-process posterior: exact inference through the inverse of the kernel matrix,
//! computed from its Cholesky factor (with jitter added when the factorization fails) and grown by
//! its Schur complement for fantasies.
//!
//! ```text
//! K = k(X, X) + noise·I = L Lᵀ      α = K⁻¹ y
//! mean(x) = k(x, X) α               var(x) = s - k(x, X) K⁻¹ k(X, x)
//! ```
//! Every acquisition value is a prediction, so predictions use `K⁻¹` directly: a quadratic form
//! has no chain of dependent steps, where a triangular solve waits on each row before the next.
//! `K` is at least `noise·I` (noise ≥ 1e-6 of a standardized objective), so its condition number
//! stays near 1e6 or below and the explicit inverse loses at most ~6 of 16 digits.

use super::kernel::{Hyper, Kernel, NOISE_FLOOR, matern52_and_slope};
use super::linalg::{Packed, dot, row_start};

/// Jitter tried, relative to the signal variance, when a Cholesky factorization fails.
const JITTERS: [f64; 5] = [1e-10, 1e-8, 1e-6, 1e-4, 1e-2];
/// The smallest posterior variance reported, relative to the signal variance, so `sd > 0`.
const MIN_VARIANCE: f64 = 1e-14;

/// A GP conditioned on data.
#[derive(Clone, Debug)]
pub struct Gp {
    hyper: Hyper,
    kernel: Kernel,
    dims: usize,
    /// Training inputs, row-major, `dims` per point.
    x: Vec<f64>,
    y: Vec<f64>,
    /// `K⁻¹`, symmetric (its lower half).
    k_inv: Packed,
    alpha: Vec<f64>,
}

impl Gp {
    /// Conditions the prior on `(x, y)`; `None` when even the largest jitter does not help.
    pub fn new(x: Vec<f64>, y: Vec<f64>, dims: usize, hyper: &Hyper, categorical: &[bool]) -> Option<Self> {
        Self::inputs(x, dims, hyper, categorical)?.with_values(y)
    }

    /// The part of the GP on inputs `x` that their values do not change (`K⁻¹`), so it can be
    /// computed before they are known; [`Gp::with_values`] completes it.
    pub fn inputs(x: Vec<f64>, dims: usize, hyper: &Hyper, categorical: &[bool]) -> Option<Self> {
        let kernel = Kernel::new(hyper, categorical);
        let k = kernel_matrix(&kernel, &x, dims, hyper.noise());
        let k_inv = cholesky_with_jitter(k, kernel.scale)?.inverse_of_product();
        Some(Self { hyper: hyper.clone(), kernel, dims, x, y: Vec::new(), k_inv, alpha: Vec::new() })
    }

    /// This GP's inputs with the values `y` (one per input): `α = K⁻¹ y`.
    pub fn with_values(mut self, y: Vec<f64>) -> Option<Self> {
        if y.len() * self.dims != self.x.len() {
            return None;
        }
        let alpha = self.k_inv.symmetric_times(&y);
        if alpha.iter().any(|a| !a.is_finite()) {
            return None;
        }
        (self.y, self.alpha) = (y, alpha);
        Some(self)
    }

    /// Whether this GP has the inputs `x` (bit for bit) and the hyperparameters `hyper`.
    pub fn has_inputs(&self, x: &[f64], hyper: &Hyper) -> bool {
        self.x == x && self.hyper == *hyper
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// The posterior mean and variance of the latent function at `p`.
    pub fn predict(&self, p: &[f64]) -> (f64, f64) {
        let k = self.cross(p);
        (self.mean_of(&k), self.variance_of(&k))
    }

    /// The posterior mean at a point whose kernel row ([`Gp::cross`]) is `k`.
    pub fn mean_of(&self, k: &[f64]) -> f64 {
        dot(k, &self.alpha)
    }

    /// The posterior variance at a point whose kernel row is `k`: the values do not enter it.
    pub fn variance_of(&self, k: &[f64]) -> f64 {
        self.clamp_var(self.kernel.scale - self.k_inv.quadratic_form(k))
    }

    /// The posterior mean and variance at `p`, and their gradients in `p` (zero on categorical axes).
    pub fn predict_with_gradient(&self, p: &[f64], d_mean: &mut [f64], d_var: &mut [f64]) -> (f64, f64) {
        let (k, slopes): (Vec<f64>, Vec<f64>) = self
            .x
            .chunks_exact(self.dims)
            .map(|row| {
                let (k, slope) = matern52_and_slope(self.kernel.r2(p, row));
                (self.kernel.scale * k, self.kernel.scale * slope)
            })
            .unzip();
        let mean = dot(&k, &self.alpha);
        // w = K⁻¹ k(X, p): var = s - k·w, and d var = -2 Σ_j w_j d k_j.
        let w = self.k_inv.symmetric_times(&k);
        let var = self.kernel.scale - dot(&k, &w);
        d_mean.fill(0.0);
        d_var.fill(0.0);
        for (j, row) in self.x.chunks_exact(self.dims).enumerate() {
            let (a, b) = (slopes[j] * self.alpha[j], -2.0 * slopes[j] * w[j]);
            for i in 0..self.dims {
                if !self.kernel.categorical[i] {
                    let dr2 = 2.0 * self.kernel.inv_sq_ls[i] * (p[i] - row[i]);
                    d_mean[i] += a * dr2;
                    d_var[i] += b * dr2;
                }
            }
        }
        (mean, self.clamp_var(var))
    }

    /// Adds one noise-free observation (a fantasy, for a pending point); `false`, and nothing
    /// changes, when the point would make the matrix singular. With `w = K⁻¹k` and the Schur
    /// complement `c = s + floor - k·w`, the grown inverse is `[[K⁻¹ + wwᵀ/c, -w/c], [-wᵀ/c, 1/c]]`.
    pub fn add(&mut self, p: &[f64], y: f64) -> bool {
        let n = self.len();
        let k = self.cross(p);
        let w = self.k_inv.symmetric_times(&k);
        let c = self.kernel.scale + NOISE_FLOOR - dot(&k, &w);
        if c.is_nan() || c <= NOISE_FLOOR * 1e-3 {
            return false;
        }
        let mut grown = Vec::with_capacity(row_start(n + 2));
        for i in 0..n {
            grown.extend(self.k_inv.row(i).iter().zip(&w[..=i]).map(|(v, wj)| v + w[i] * wj / c));
        }
        grown.extend(w.iter().map(|wj| -wj / c));
        grown.push(1.0 / c);
        let k_inv = Packed::new(n + 1, grown);
        let mut y_all = self.y.clone();
        y_all.push(y);
        let alpha = k_inv.symmetric_times(&y_all);
        if alpha.iter().any(|a| !a.is_finite()) {
            return false;
        }
        (self.k_inv, self.alpha, self.y) = (k_inv, alpha, y_all);
        self.x.extend_from_slice(p);
        true
    }

    /// The kernel between `p` and every input.
    pub fn cross(&self, p: &[f64]) -> Vec<f64> {
        self.x.chunks_exact(self.dims).map(|row| self.kernel.at(self.kernel.r2(p, row))).collect()
    }

    fn clamp_var(&self, var: f64) -> f64 {
        if var.is_nan() { MIN_VARIANCE * self.kernel.scale } else { var.max(MIN_VARIANCE * self.kernel.scale) }
    }
}

/// The lower half of `k(X, X) + noise·I`, packed by rows.
pub fn kernel_matrix(kernel: &Kernel, x: &[f64], dims: usize, noise: f64) -> Packed {
    let n = x.len() / dims;
    let mut k = Vec::with_capacity(row_start(n));
    for i in 0..n {
        let a = &x[i * dims..(i + 1) * dims];
        k.extend((0..i).map(|j| kernel.at(kernel.r2(a, &x[j * dims..(j + 1) * dims]))));
        k.push(kernel.scale + noise);
    }
    Packed::new(n, k)
}

/// The Cholesky factor of `k`, adding growing jitter to the diagonal until it exists.
pub fn cholesky_with_jitter(k: Packed, scale: f64) -> Option<Packed> {
    if let Some(l) = k.clone().cholesky() {
        return Some(l);
    }
    JITTERS.iter().find_map(|j| {
        let mut jittered = k.clone();
        jittered.add_diagonal(j * scale);
        jittered.cholesky()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine_gp(hyper: &Hyper) -> (Gp, Vec<f64>) {
        let x: Vec<f64> = (0..8).map(|i| i as f64 / 7.0).collect();
        let y: Vec<f64> = x.iter().map(|v| (6.0 * v).sin()).collect();
        (Gp::new(x.clone(), y, 1, hyper, &[false]).unwrap(), x)
    }

    fn tight() -> Hyper {
        Hyper { log_inv_sq_ls: vec![(30.0f64).ln()], log_scale: 0.0, log_noise: -30.0 }
    }

    #[test]
    fn the_gp_interpolates_noise_free_data() {
        let (gp, x) = sine_gp(&tight());
        for &v in &x {
            let (mean, _) = gp.predict(&[v]);
            assert!((mean - (6.0 * v).sin()).abs() < 1e-4, "at {v}: {mean}");
        }
        let (mean, _) = gp.predict(&[0.5 / 7.0]);
        assert!((mean - (6.0 * 0.5 / 7.0f64).sin()).abs() < 0.05);
    }

    #[test]
    fn posterior_variance_shrinks_at_observed_points() {
        let (gp, x) = sine_gp(&tight());
        let (_, between) = gp.predict(&[0.5 / 7.0]);
        for &v in &x {
            let (_, var) = gp.predict(&[v]);
            assert!(var < 1e-4 && var < between / 100.0, "at {v}: {var} vs {between}");
        }
        let (_, far) = gp.predict(&[5.0]);
        assert!((far - 1.0).abs() < 1e-6, "prior variance far away: {far}");
    }

    #[test]
    fn prediction_gradients_match_finite_differences() {
        let hyper = Hyper { log_inv_sq_ls: vec![1.0, 0.5], log_scale: 0.2, log_noise: -9.0 };
        let x = vec![0.1, 0.2, 0.7, 0.4, 0.3, 0.9, 0.8, 0.8];
        let gp = Gp::new(x, vec![1.0, -0.5, 0.3, 2.0], 2, &hyper, &[false, false]).unwrap();
        let p = [0.45, 0.55];
        let (mut dm, mut dv) = ([0.0; 2], [0.0; 2]);
        gp.predict_with_gradient(&p, &mut dm, &mut dv);
        for i in 0..2 {
            let h = 1e-6;
            let (mut a, mut b) = (p, p);
            a[i] += h;
            b[i] -= h;
            let ((ma, va), (mb, vb)) = (gp.predict(&a), gp.predict(&b));
            assert!((dm[i] - (ma - mb) / (2.0 * h)).abs() < 1e-5, "mean axis {i}");
            assert!((dv[i] - (va - vb) / (2.0 * h)).abs() < 1e-5, "variance axis {i}");
        }
    }

    #[test]
    fn growing_the_factor_equals_refitting_with_the_point() {
        // A noise at the floor, which is what a fantasy gets.
        let hyper = Hyper { log_inv_sq_ls: vec![2.0], log_scale: 0.0, log_noise: -40.0 };
        let mut grown = Gp::new(vec![0.1, 0.5], vec![1.0, 0.0], 1, &hyper, &[false]).unwrap();
        assert!(grown.add(&[0.9], 2.0));
        let refit = Gp::new(vec![0.1, 0.5, 0.9], vec![1.0, 0.0, 2.0], 1, &hyper, &[false]).unwrap();
        let (a, b) = (grown.predict(&[0.7]), refit.predict(&[0.7]));
        assert!((a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9, "{a:?} vs {b:?}");
    }

    #[test]
    fn a_repeated_point_without_noise_is_handled_by_jitter_not_a_panic() {
        let hyper = Hyper { log_inv_sq_ls: vec![0.0], log_scale: 0.0, log_noise: -25.0 };
        let gp = Gp::new(vec![0.3, 0.3, 0.3], vec![1.0, 1.0, 1.0], 1, &hyper, &[false]);
        let (mean, var) = gp.unwrap().predict(&[0.3]);
        assert!(mean.is_finite() && var > 0.0);
    }
}

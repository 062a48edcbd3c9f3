//! The Gaussian-process posterior: exact inference through a Cholesky factor of the kernel
//! matrix, with jitter added when the factorization fails, and rank-one growth for fantasies.
//!
//! ```text
//! K = k(X, X) + noise·I = L Lᵀ      α = K⁻¹ y
//! mean(x) = k(x, X) α               var(x) = s - |L⁻¹ k(X, x)|²
//! ```

use nalgebra::{DMatrix, DVector};

use super::kernel::{Hyper, Kernel, NOISE_FLOOR};

/// Jitter tried, relative to the signal variance, when a Cholesky factorization fails.
const JITTERS: [f64; 5] = [1e-10, 1e-8, 1e-6, 1e-4, 1e-2];
/// The smallest posterior variance reported, relative to the signal variance, so `sd > 0`.
const MIN_VARIANCE: f64 = 1e-14;

/// A GP conditioned on data.
#[derive(Clone, Debug)]
pub struct Gp {
    kernel: Kernel,
    dims: usize,
    /// Training inputs, row-major, `dims` per point.
    x: Vec<f64>,
    y: Vec<f64>,
    l: DMatrix<f64>,
    alpha: DVector<f64>,
}

impl Gp {
    /// Conditions the prior on `(x, y)`; `None` when even the largest jitter does not help.
    pub fn new(x: Vec<f64>, y: Vec<f64>, dims: usize, hyper: &Hyper, categorical: &[bool]) -> Option<Self> {
        let kernel = Kernel::new(hyper, categorical);
        let noise = hyper.noise();
        let k = kernel_matrix(&kernel, &x, dims, noise);
        let l = cholesky_with_jitter(k, kernel.scale)?;
        let mut gp = Self { kernel, dims, x, y, l, alpha: DVector::zeros(0) };
        gp.alpha = gp.solve_alpha()?;
        Some(gp)
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// The posterior mean and variance of the latent function at `p`.
    pub fn predict(&self, p: &[f64]) -> (f64, f64) {
        let mut k = self.cross(p);
        let mean = k.dot(&self.alpha);
        let var = if self.l.solve_lower_triangular_mut(&mut k) { self.kernel.scale - k.norm_squared() } else { 0.0 };
        (mean, self.clamp_var(var))
    }

    /// The posterior mean and variance at `p`, and their gradients in `p` (zero on categorical axes).
    pub fn predict_with_gradient(&self, p: &[f64], d_mean: &mut [f64], d_var: &mut [f64]) -> (f64, f64) {
        let r2: Vec<f64> = self.x.chunks_exact(self.dims).map(|row| self.kernel.r2(p, row)).collect();
        let mut w = DVector::from_iterator(r2.len(), r2.iter().map(|&r| self.kernel.at(r)));
        let mean = w.dot(&self.alpha);
        // v = L⁻¹ k(X, p) gives the variance; w = L⁻ᵀ v = K⁻¹ k(X, p), and d var = -2 Σ_j w_j d k_j.
        let solved = self.l.solve_lower_triangular_mut(&mut w);
        let var = self.kernel.scale - w.norm_squared();
        if !(solved && self.l.tr_solve_lower_triangular_mut(&mut w)) {
            w.fill(0.0);
        }
        d_mean.fill(0.0);
        d_var.fill(0.0);
        for (j, row) in self.x.chunks_exact(self.dims).enumerate() {
            let slope = self.kernel.slope(r2[j]);
            let (a, b) = (slope * self.alpha[j], -2.0 * slope * w[j]);
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

    /// Adds one noise-free observation (a fantasy, for a pending point) by growing the Cholesky
    /// factor; `false`, and nothing changes, when the point would make the matrix singular.
    pub fn add(&mut self, p: &[f64], y: f64) -> bool {
        let n = self.len();
        let k = self.cross(p);
        let Some(v) = self.l.solve_lower_triangular(&k) else { return false };
        let diag = self.kernel.scale + NOISE_FLOOR - v.norm_squared();
        if diag.is_nan() || diag <= NOISE_FLOOR * 1e-3 {
            return false;
        }
        let mut l = self.l.clone().resize(n + 1, n + 1, 0.0);
        for j in 0..n {
            l[(n, j)] = v[j];
        }
        l[(n, n)] = diag.sqrt();
        let previous = std::mem::replace(&mut self.l, l);
        self.x.extend_from_slice(p);
        self.y.push(y);
        match self.solve_alpha() {
            Some(alpha) => {
                self.alpha = alpha;
                true
            }
            None => {
                self.l = previous;
                self.x.truncate(n * self.dims);
                self.y.truncate(n);
                false
            }
        }
    }

    fn cross(&self, p: &[f64]) -> DVector<f64> {
        DVector::from_iterator(
            self.len(),
            self.x.chunks_exact(self.dims).map(|row| self.kernel.at(self.kernel.r2(p, row))),
        )
    }

    fn solve_alpha(&self) -> Option<DVector<f64>> {
        let y = DVector::from_column_slice(&self.y);
        let z = self.l.solve_lower_triangular(&y)?;
        self.l.tr_solve_lower_triangular(&z)
    }

    fn clamp_var(&self, var: f64) -> f64 {
        var.max(MIN_VARIANCE * self.kernel.scale)
    }
}

/// `k(X, X) + noise·I`.
pub fn kernel_matrix(kernel: &Kernel, x: &[f64], dims: usize, noise: f64) -> DMatrix<f64> {
    let n = x.len() / dims;
    let mut k = DMatrix::zeros(n, n);
    for i in 0..n {
        let a = &x[i * dims..(i + 1) * dims];
        k[(i, i)] = kernel.scale + noise;
        for j in 0..i {
            let v = kernel.at(kernel.r2(a, &x[j * dims..(j + 1) * dims]));
            k[(i, j)] = v;
            k[(j, i)] = v;
        }
    }
    k
}

/// The lower Cholesky factor of `k`, adding growing jitter to the diagonal until it exists.
pub fn cholesky_with_jitter(k: DMatrix<f64>, scale: f64) -> Option<DMatrix<f64>> {
    if let Some(c) = k.clone().cholesky() {
        return Some(c.unpack());
    }
    let n = k.nrows();
    JITTERS.iter().find_map(|j| (k.clone() + DMatrix::identity(n, n) * (j * scale)).cholesky().map(|c| c.unpack()))
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

//! The few dense linear-algebra pieces the GP needs, on lower triangles packed by rows: row `i`
//! holds columns `0..=i` and starts at `i(i+1)/2`. Rows are contiguous, so every inner loop is a
//! dot product or an axpy over contiguous memory, and a factor grows by a row (a fantasy) by
//! appending. At the GP's sizes (n ≤ 150) this beats a general matrix library by a few times.
//!
//! ```text
//! K = L Lᵀ (Cholesky)     L z = b (forward)     Lᵀ x = z (backward)     K⁻¹ = L⁻ᵀ L⁻¹
//! ```

/// Where row `i` starts.
pub const fn row_start(i: usize) -> usize {
    i * (i + 1) / 2
}

/// `a · b`.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four accumulators let the compiler keep several multiply-adds in flight.
    let (mut s0, mut s1, mut s2, mut s3) = (0.0, 0.0, 0.0, 0.0);
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        s0 += x[0] * y[0];
        s1 += x[1] * y[1];
        s2 += x[2] * y[2];
        s3 += x[3] * y[3];
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (s0 + s1) + (s2 + s3) + tail
}

/// A lower-triangular (or the lower half of a symmetric) `n × n` matrix, packed by rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Packed {
    n: usize,
    data: Vec<f64>,
}

impl Packed {
    /// From packed rows (`n(n+1)/2` values).
    pub fn new(n: usize, data: Vec<f64>) -> Self {
        debug_assert_eq!(data.len(), row_start(n));
        Self { n, data }
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[row_start(i)..row_start(i + 1)]
    }

    pub fn at(&self, i: usize, j: usize) -> f64 {
        debug_assert!(j <= i);
        self.data[row_start(i) + j]
    }

    pub fn diagonal(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.n).map(|i| self.at(i, i))
    }

    /// The Cholesky factor of the symmetric positive-definite matrix whose lower half this is
    /// (row by row, Cholesky–Banachiewicz); `None` when a pivot is not positive.
    pub fn cholesky(mut self) -> Option<Self> {
        for i in 0..self.n {
            let start = row_start(i);
            for j in 0..=i {
                let (head, tail) = self.data.split_at_mut(start);
                let row_i = &tail[..=i];
                let sum = dot(&row_i[..j], if j == i { &row_i[..j] } else { &head[row_start(j)..row_start(j) + j] });
                let v = row_i[j] - sum;
                tail[j] = if j == i {
                    if v.is_nan() || v <= 0.0 {
                        return None;
                    }
                    v.sqrt()
                } else {
                    v / head[row_start(j) + j]
                };
            }
        }
        Some(self)
    }

    /// Solves `L z = b` in place (this is `L`).
    pub fn forward(&self, b: &mut [f64]) {
        for i in 0..self.n {
            let row = self.row(i);
            b[i] = (b[i] - dot(&row[..i], &b[..i])) / row[i];
        }
    }

    /// Solves `Lᵀ x = z` in place (this is `L`).
    pub fn backward(&self, z: &mut [f64]) {
        for i in (0..self.n).rev() {
            let row = self.row(i);
            let x = z[i] / row[i];
            z[i] = x;
            for (zk, lik) in z[..i].iter_mut().zip(&row[..i]) {
                *zk -= lik * x;
            }
        }
    }

    /// `K⁻¹ = L⁻ᵀ L⁻¹` (this is `L`), as the lower half of a symmetric matrix.
    pub fn inverse_of_product(&self) -> Self {
        let n = self.n;
        // U = L⁻¹, row by row: U_i = (e_i - Σ_{k<i} L_ik U_k) / L_ii.
        let mut u = vec![0.0; row_start(n)];
        for i in 0..n {
            let row = self.row(i);
            let (done, current) = u.split_at_mut(row_start(i));
            let current = &mut current[..=i];
            for (k, &lik) in row[..i].iter().enumerate() {
                for (c, uk) in current.iter_mut().zip(&done[row_start(k)..row_start(k + 1)]) {
                    *c -= lik * uk;
                }
            }
            current[i] += 1.0;
            let inv = 1.0 / row[i];
            current.iter_mut().for_each(|c| *c *= inv);
        }
        // (UᵀU)_ab = Σ_{k ≥ a ≥ b} U_ka U_kb: one outer product of each row of U.
        let mut out = vec![0.0; row_start(n)];
        for k in 0..n {
            let uk = &u[row_start(k)..row_start(k + 1)];
            for (a, &uka) in uk.iter().enumerate() {
                for (o, ukb) in out[row_start(a)..=row_start(a) + a].iter_mut().zip(uk) {
                    *o += uka * ukb;
                }
            }
        }
        Self { n, data: out }
    }

    /// `S x`, where this is the lower half of the symmetric `S`.
    pub fn symmetric_times(&self, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n];
        for i in 0..self.n {
            let row = self.row(i);
            let (below, _) = out.split_at_mut(i);
            for (o, s) in below.iter_mut().zip(&row[..i]) {
                *o += s * x[i];
            }
            out[i] += dot(&row[..i], &x[..i]) + row[i] * x[i];
        }
        out
    }

    /// `xᵀ S x`, where this is the lower half of the symmetric `S`.
    pub fn quadratic_form(&self, x: &[f64]) -> f64 {
        (0..self.n)
            .map(|i| {
                let row = self.row(i);
                x[i] * (2.0 * dot(&row[..i], &x[..i]) + row[i] * x[i])
            })
            .sum()
    }

    /// Adds `v` to the diagonal.
    pub fn add_diagonal(&mut self, v: f64) {
        for i in 0..self.n {
            self.data[row_start(i) + i] += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-conditioned symmetric positive-definite matrix, full and packed.
    fn spd(n: usize) -> (Vec<Vec<f64>>, Packed) {
        let full: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| if i == j { n as f64 + 1.0 } else { 1.0 / (1.0 + (i + j) as f64) }).collect())
            .collect();
        let packed = (0..n).flat_map(|i| full[i][..=i].to_vec()).collect();
        (full, Packed::new(n, packed))
    }

    #[test]
    fn the_factor_times_its_transpose_is_the_matrix() {
        let (full, packed) = spd(7);
        let l = packed.cholesky().unwrap();
        for (i, row) in full.iter().enumerate() {
            for (j, &value) in row[..=i].iter().enumerate() {
                let llt: f64 = (0..=j).map(|k| l.at(i, k) * l.at(j, k)).sum();
                assert!((llt - value).abs() < 1e-12, "({i},{j})");
            }
        }
    }

    #[test]
    fn solves_and_the_inverse_agree_with_the_matrix() {
        let (full, packed) = spd(9);
        let l = packed.cholesky().unwrap();
        let b: Vec<f64> = (0..9).map(|i| (i as f64 * 0.7).sin()).collect();
        let mut x = b.clone();
        l.forward(&mut x);
        l.backward(&mut x);
        let inv = l.inverse_of_product();
        let s = inv.symmetric_times(&b);
        assert!(s.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-12), "K⁻¹ b = x");
        let form: f64 = b.iter().zip(&x).map(|(a, b)| a * b).sum();
        assert!((inv.quadratic_form(&b) - form).abs() < 1e-12, "bᵀ K⁻¹ b");
        for (i, row) in full.iter().enumerate() {
            let kx: f64 = row.iter().zip(&x).map(|(a, b)| a * b).sum();
            assert!((kx - b[i]).abs() < 1e-12, "K x = b at {i}");
            for j in 0..9 {
                let kinv = |a: usize, c: usize| if c <= a { inv.at(a, c) } else { inv.at(c, a) };
                let e: f64 = (0..9).map(|m| row[m] * kinv(m, j)).sum();
                assert!((e - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12, "K K⁻¹ at ({i},{j})");
            }
        }
    }

    #[test]
    fn a_matrix_that_is_not_positive_definite_has_no_factor() {
        let p = Packed::new(2, vec![1.0, 2.0, 1.0]);
        assert!(p.cholesky().is_none());
        assert!(Packed::new(1, vec![f64::NAN]).cholesky().is_none());
    }
}

//! A counter-based random generator: every number is a pure function of
//! (seed, stream, index), so tick `t`'s noise is the same whether or not
//! earlier ticks ran, and in any order.
//!
//! Bits come from the SplitMix64 finaliser; Gaussians from Box–Muller on two
//! uniforms in (0, 1], so every sample is finite (|z| < 8.6).

/// The SplitMix64 output function: a bijective 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a hash of a string (stable across runs and platforms).
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// One independent stream of numbers, e.g. one tick of one noise source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream(u64);

impl Stream {
    /// The stream `stream` (a tick) of generator `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        Stream(mix(mix(seed) ^ stream))
    }

    /// The `i`-th 64 random bits.
    pub fn bits(self, i: u64) -> u64 {
        mix(self.0.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }

    /// The `i`-th uniform number in (0, 1].
    pub fn uniform(self, i: u64) -> f64 {
        ((self.bits(i) >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fills `out` with standard normal samples; element `k` depends only on
    /// the stream and `k`.
    pub fn fill_gaussian(self, out: &mut [f32]) {
        for (pair, chunk) in out.chunks_mut(2).enumerate() {
            let k = 2 * pair as u64;
            let r = (-2.0 * self.uniform(k).ln()).sqrt();
            let theta = std::f64::consts::TAU * self.uniform(k + 1);
            chunk[0] = (r * theta.cos()) as f32;
            if let Some(second) = chunk.get_mut(1) {
                *second = (r * theta.sin()) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_moments_and_independence() {
        let mut a = vec![0.0f32; 100_001];
        Stream::new(7, 3).fill_gaussian(&mut a);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = a
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            mean.abs() < 0.02 && (var.sqrt() - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
        assert!(a.iter().all(|v| v.is_finite()));
        let mut b = vec![0.0f32; 10];
        Stream::new(7, 3).fill_gaussian(&mut b);
        assert_eq!(b, a[..10]);
        Stream::new(7, 4).fill_gaussian(&mut b);
        assert_ne!(b, a[..10]);
        assert_ne!(hash_str("a"), hash_str("b"));
    }
}

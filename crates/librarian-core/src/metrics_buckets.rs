//! The histogram buckets every latency metric uses, so that the server's and the sync core's
//! histograms can be read against each other (and summed) bucket by bucket.

/// Latency buckets in seconds: 0.2 ms doubling up to ~1.6 s (14 buckets), covering a commit
/// on a fast disk up to a reload of a large library. Equal to
/// `prometheus::exponential_buckets(0.0002, 2.0, 14)`, computed here so that this crate needs no
/// Prometheus dependency.
pub fn latency_buckets() -> Vec<f64> {
    std::iter::successors(Some(0.0002_f64), |b| Some(b * 2.0))
        .take(14)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_a_fifth_of_a_millisecond_doubling_to_over_a_second() {
        let b = latency_buckets();
        assert_eq!(b.len(), 14);
        assert_eq!(b[0], 0.0002);
        assert!(b.windows(2).all(|w| w[1] == w[0] * 2.0));
        assert!((b[13] - 1.6384).abs() < 1e-12, "{}", b[13]);
    }
}

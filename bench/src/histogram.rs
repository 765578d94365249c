//! graspd's own measure of a latency: a Prometheus histogram read from `/metrics` before
//! and after a run, so the benchmark reports what the server observed over exactly the
//! measured iterations (the difference of two snapshots).

/// One label's buckets of a histogram: cumulative counts by upper bound (seconds), plus
/// the count and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(le, cumulative count)`, ascending, `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Sum of observations, in seconds.
    pub sum: f64,
}

impl Histogram {
    /// The series `name{label="value"}` of the Prometheus text `metrics` (empty if
    /// absent: nothing observed yet).
    pub fn parse(metrics: &str, name: &str, label: &str, value: &str) -> Self {
        let selector = format!("{label}=\"{value}\"");
        let mut h = Histogram::default();
        for line in metrics.lines() {
            let Some((series, number)) = line.rsplit_once(' ') else {
                continue;
            };
            if !series.contains(&selector) {
                continue;
            }
            let number: f64 = number.parse().unwrap_or(0.0);
            if let Some(rest) = series.strip_prefix(&format!("{name}_bucket{{")) {
                let le = rest
                    .split("le=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("+Inf");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::INFINITY)
                };
                h.buckets.push((le, number as u64));
            } else if series.starts_with(&format!("{name}_count{{")) {
                h.count = number as u64;
            } else if series.starts_with(&format!("{name}_sum{{")) {
                h.sum = number;
            }
        }
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        h
    }

    /// What was observed after `before` was taken.
    pub fn since(&self, before: &Histogram) -> Histogram {
        let old = |le: f64| {
            before
                .buckets
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0, |(_, c)| *c)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, c)| (*le, c.saturating_sub(old(*le))))
                .collect(),
            count: self.count.saturating_sub(before.count),
            sum: self.sum - before.sum,
        }
    }

    /// Share of observations at or below the bucket bound `le` (seconds); `None` when
    /// `le` is not a bucket bound or nothing was observed.
    pub fn share_within(&self, le: f64) -> Option<f64> {
        let (_, c) = self.buckets.iter().find(|(l, _)| (*l - le).abs() < 1e-12)?;
        (self.count > 0).then(|| *c as f64 / self.count as f64)
    }

    /// The bucket the `q`-quantile falls in, as `(lower, upper]` bounds in seconds: a
    /// histogram can say no more than that.
    pub fn quantile_bucket(&self, q: f64) -> Option<(f64, f64)> {
        if self.count == 0 {
            return None;
        }
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut lower = 0.0;
        for (le, c) in &self.buckets {
            if *c >= rank {
                return Some((lower, *le));
            }
            lower = *le;
        }
        None
    }

    /// The mean observation in seconds.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// `p50 in (1, 2] ms, p99 in (2, 5] ms, mean 1.23 ms (n = 200)`.
    pub fn describe(&self) -> String {
        let b = |q: f64| match self.quantile_bucket(q) {
            Some((lo, hi)) if hi.is_infinite() => format!("> {}", ms(lo)),
            Some((lo, hi)) => format!("in ({}, {}] ms", ms(lo), ms(hi)),
            None => "n/a".to_owned(),
        };
        format!(
            "p50 {}, p99 {}, mean {:.2} ms (n = {})",
            b(0.5),
            b(0.99),
            self.mean() * 1e3,
            self.count
        )
    }
}

fn ms(seconds: f64) -> String {
    let v = seconds * 1e3;
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// `GET <base>/metrics` as text.
pub async fn scrape(base_url: &str) -> String {
    grasp_tests::http::get(&format!("{base_url}/metrics"), &[])
        .await
        .expect("GET /metrics")
        .text()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE graspd_release_latency_seconds histogram
graspd_release_latency_seconds_bucket{path=\"push\",le=\"0.001\"} 3
graspd_release_latency_seconds_bucket{path=\"push\",le=\"0.005\"} 9
graspd_release_latency_seconds_bucket{path=\"push\",le=\"+Inf\"} 10
graspd_release_latency_seconds_sum{path=\"push\"} 0.04
graspd_release_latency_seconds_count{path=\"push\"} 10
graspd_release_latency_seconds_bucket{path=\"sync\",le=\"0.001\"} 1
graspd_release_latency_seconds_count{path=\"sync\"} 1
";

    #[test]
    fn parses_and_differences() {
        let name = "graspd_release_latency_seconds";
        let h = Histogram::parse(TEXT, name, "path", "push");
        assert_eq!(h.count, 10);
        assert_eq!(h.buckets.len(), 3);
        assert_eq!(h.share_within(0.005), Some(0.9));
        assert_eq!(h.quantile_bucket(0.5), Some((0.001, 0.005)));
        assert_eq!(h.quantile_bucket(0.99).map(|b| b.1), Some(f64::INFINITY));
        let d = h.since(&Histogram::parse(TEXT, name, "path", "none"));
        assert_eq!(d, h);
        assert_eq!(h.since(&h).count, 0);
        assert_eq!(Histogram::parse(TEXT, name, "path", "sync").count, 1);
    }
}

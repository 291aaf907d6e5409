//! The injectable clock. Everything that compares against "now" (TUF expiry, certificate validity,
//! freshness policy, break-glass expiry) takes a [`Clock`] or a `Timestamp` read from one, so tests
//! and faketime-driven conformance runs control time.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system clock (`clock_gettime`, which libfaketime intercepts).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to. For tests and replays.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        Self(Mutex::new(at))
    }
    pub fn set(&self, at: Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
    pub fn advance(&self, by: SignedDuration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t = t.checked_add(by).unwrap_or(*t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// Parse `90s`, `5m`, `1h 30m`, `PT5M` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(n));
    }
    let d: jiff::SignedDuration = match s.parse() {
        Ok(d) => d,
        // days ("7d"): a Span, with days of 24 hours
        Err(e) => s
            .parse::<jiff::Span>()
            .ok()
            .and_then(|sp| sp.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).ok())
            .ok_or_else(|| format!("invalid duration {s:?}: {e}"))?,
    };
    std::time::Duration::try_from(d).map_err(|_| format!("invalid duration {s:?}: negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_days() {
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 7 * 86400);
        assert_eq!(parse_duration("1d 2h").unwrap().as_secs(), 26 * 3600);
        assert!(parse_duration("-5m").is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(SignedDuration::from_secs(90));
        assert_eq!(c.now().as_second() - t0.as_second(), 90);
        c.set(t0);
        assert_eq!(c.now(), t0);
    }
}

/// A duration as people write it: `30d`, `7d 12h`, `90m`, `45s`.
pub fn human(d: SignedDuration) -> String {
    let mut s = d.as_secs().unsigned_abs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = vec![];
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push(format!("{}{unit}", s / n));
            s %= n;
        }
        if out.len() == 2 {
            break;
        }
    }
    format!("{}{}", if d.is_negative() { "-" } else { "" }, out.join(" "))
}

//! Per-identity rate limiting: one token bucket per (binary identity, event
//! kind, finding rule). A noisy workload cannot flood the SIEM; what it loses
//! is counted and reported as a summary event carrying `suppressed`
//! ("N similar events suppressed") once per `summary_interval`.
//!
//! Off by default. `agent_status` is never limited.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::Deserialize;
use tokio::{sync::watch, time::Instant};

use crate::event::{Event, Kind, Suppressed};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Sustained events per second per key.
    pub events_per_second: f64,
    /// Events a key may send at once before the rate applies.
    pub burst: u32,
    /// How often summaries of suppressed events go out.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub summary_interval: Duration,
    /// Keys tracked at most; beyond it, idle keys are forgotten first and
    /// new keys are not limited (never a silent drop).
    pub max_keys: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            events_per_second: 100.0,
            burst: 1000,
            summary_interval: Duration::from_secs(10),
            max_keys: 65536,
        }
    }
}

impl RateLimitConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.events_per_second > 0.0 && self.events_per_second.is_finite()) {
            return Err("rate_limit.events_per_second must be a positive number".into());
        }
        if self.burst == 0 {
            return Err("rate_limit.burst must be at least 1".into());
        }
        if self.summary_interval < Duration::from_millis(100) {
            return Err("rate_limit.summary_interval must be at least 100ms".into());
        }
        if self.max_keys == 0 {
            return Err("rate_limit.max_keys must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    identity: String,
    kind: Kind,
    rule: Option<&'static str>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
    first_time: String,
    /// The last suppressed event: the summary repeats its process and details.
    sample: Option<Arc<Event>>,
}

pub struct RateLimiter {
    cfg: RateLimitConfig,
    /// New settings from a config reload, taken at the next event; the
    /// buckets (and what they suppressed) are kept.
    updates: Option<watch::Receiver<RateLimitConfig>>,
    buckets: HashMap<Key, Bucket>,
    /// Events suppressed since start (all keys), for agent_status.
    pub total_suppressed: u64,
}

fn key(ev: &Event) -> Key {
    let exe = &ev.process.exe;
    Key {
        identity: match &exe.sha256 {
            Some(h) => format!("sha256:{h}"),
            None => format!("path:{}", exe.path),
        },
        kind: ev.kind,
        rule: ev.finding.as_ref().map(|f| f.rule),
    }
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self {
            cfg,
            updates: None,
            buckets: HashMap::new(),
            total_suppressed: 0,
        }
    }

    /// A limiter that follows `updates` (the daemon's reloads). The summary
    /// interval is the one it starts with: its ticker is set up once.
    pub fn following(updates: watch::Receiver<RateLimitConfig>) -> Self {
        let cfg = updates.borrow().clone();
        Self {
            updates: Some(updates),
            ..Self::new(cfg)
        }
    }

    pub fn enabled(&self) -> bool {
        self.updates
            .as_ref()
            .map_or(self.cfg.enabled, |u| u.borrow().enabled)
    }

    fn take_update(&mut self) {
        if let Some(u) = self.updates.as_mut() {
            if u.has_changed().unwrap_or(false) {
                self.cfg = u.borrow_and_update().clone();
            }
        }
    }

    pub fn summary_interval(&self) -> Duration {
        self.cfg.summary_interval
    }

    /// Whether `ev` goes out; a suppressed event is remembered for the summary.
    pub fn admit(&mut self, ev: &Arc<Event>, now: Instant) -> bool {
        self.take_update();
        if !self.cfg.enabled || ev.kind == Kind::AgentStatus {
            return true;
        }
        let k = key(ev);
        if !self.buckets.contains_key(&k) && self.buckets.len() >= self.cfg.max_keys {
            self.forget_idle(now);
            if self.buckets.len() >= self.cfg.max_keys {
                return true;
            }
        }
        let burst = f64::from(self.cfg.burst);
        let rate = self.cfg.events_per_second;
        let b = self.buckets.entry(k).or_insert_with(|| Bucket {
            tokens: burst,
            last: now,
            suppressed: 0,
            first_time: String::new(),
            sample: None,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return true;
        }
        if b.suppressed == 0 {
            b.first_time = ev.time.to_string();
        }
        b.suppressed += 1;
        b.sample = Some(ev.clone());
        self.total_suppressed += 1;
        false
    }

    /// Buckets full again and with nothing to report can go.
    fn forget_idle(&mut self, now: Instant) {
        let full = Duration::from_secs_f64(f64::from(self.cfg.burst) / self.cfg.events_per_second);
        self.buckets
            .retain(|_, b| b.suppressed > 0 || now.duration_since(b.last) < full);
    }

    /// One summary event per key that suppressed something since the last call.
    pub fn summaries(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        for (k, b) in &mut self.buckets {
            let Some(sample) = b.sample.take() else {
                continue;
            };
            let count = std::mem::take(&mut b.suppressed);
            let mut ev = (*sample).clone();
            ev.suppressed = Some(Suppressed {
                count,
                identity: k.identity.clone(),
                kind: k.kind,
                rule: k.rule,
                first_time: std::mem::take(&mut b.first_time),
                last_time: sample.time.to_string(),
                summary: format!(
                    "{count} similar {} events{} from {} suppressed",
                    k.kind.as_str(),
                    k.rule.map(|r| format!(" ({r})")).unwrap_or_default(),
                    k.identity
                ),
            });
            out.push(ev);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn limits_per_key_and_summarises() {
        let mut r = RateLimiter::new(RateLimitConfig {
            enabled: true,
            events_per_second: 1.0,
            burst: 3,
            ..RateLimitConfig::default()
        });
        let t0 = Instant::now();
        let ev = Arc::new(testdata::event(Kind::FileOpen));
        let other = Arc::new(testdata::event_with(
            Kind::FileOpen,
            testdata::host_process(),
        ));
        let admitted = (0..10).filter(|_| r.admit(&ev, t0)).count();
        assert_eq!(admitted, 3);
        assert!(r.admit(&other, t0), "another identity has its own bucket");
        assert!(r.admit(&ev, t0 + Duration::from_millis(1100)), "refilled");
        let s = r.summaries();
        assert_eq!(s.len(), 1);
        let sup = s[0].suppressed.as_ref().unwrap();
        assert_eq!(sup.count, 7);
        assert!(
            sup.summary.starts_with("7 similar file_open events"),
            "{}",
            sup.summary
        );
        assert!(r.summaries().is_empty(), "reported once");
        let status = Arc::new(testdata::event(Kind::AgentStatus));
        assert!((0..10).all(|_| r.admit(&status, t0)));
    }

    #[test]
    fn a_reload_changes_the_limits_at_the_next_event_and_keeps_what_was_suppressed() {
        let on = RateLimitConfig {
            enabled: true,
            events_per_second: 0.001,
            burst: 2,
            ..RateLimitConfig::default()
        };
        let (tx, rx) = watch::channel(RateLimitConfig::default());
        let mut r = RateLimiter::following(rx);
        let t0 = Instant::now();
        let ev = Arc::new(testdata::event(Kind::FileOpen));
        assert!(!r.enabled());
        assert!((0..10).all(|_| r.admit(&ev, t0)), "off: nothing limited");
        tx.send(on.clone()).unwrap();
        assert!(r.enabled(), "the emitter's summary tick runs from now on");
        assert_eq!((0..10).filter(|_| r.admit(&ev, t0)).count(), 2);
        tx.send(RateLimitConfig {
            enabled: false,
            ..on
        })
        .unwrap();
        assert!(r.admit(&ev, t0), "turned off again by the next reload");
        let s = r.summaries();
        assert_eq!(
            s[0].suppressed.as_ref().unwrap().count,
            8,
            "kept across the reload"
        );
    }
}

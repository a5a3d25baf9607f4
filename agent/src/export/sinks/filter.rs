//! Which events a sink takes: kinds, and a minimum severity for findings.

use super::config::SinkConfig;
use crate::{
    event::Severity,
    event::{Event, Kind},
};

#[derive(Debug, Clone)]
pub struct Filter {
    kinds: Vec<Kind>,
    min_severity: Option<Severity>,
}

impl Filter {
    pub fn new(cfg: &SinkConfig) -> Self {
        Self {
            kinds: cfg.kinds.clone(),
            min_severity: cfg.min_severity,
        }
    }

    pub fn accepts(&self, ev: &Event) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&ev.kind) {
            return false;
        }
        match (&ev.finding, self.min_severity) {
            (Some(f), Some(min)) => f.severity >= min,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn kinds_and_severity() {
        let f = Filter::new(
            &serde_yaml_ng::from_str(
                "type: stdout\nkinds: [finding, process_exec]\nmin_severity: high",
            )
            .unwrap(),
        );
        assert!(f.accepts(&testdata::event(Kind::ProcessExec)));
        assert!(!f.accepts(&testdata::event(Kind::FileOpen)));
        let mut low = testdata::event(Kind::Finding);
        low.finding = Some(Box::new(testdata::finding("secret-read", Severity::Low)));
        assert!(!f.accepts(&low));
        assert!(f.accepts(&testdata::event(Kind::Finding)));
    }
}

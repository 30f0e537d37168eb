//! A fault reported once while it lasts. A background loop that retries (lease renewal, a bus
//! subscription) would otherwise log the same warning every few seconds for as long as, say,
//! Redis refuses the password: the first failure is a warning with the cause, the same failure
//! again is debug, another failure is a warning again, and the first success says it ended.

#[derive(Debug, Default)]
pub struct FaultLog {
    current: Option<String>,
}

impl FaultLog {
    /// Reports a failure of `what`; returns whether it was logged as a warning.
    pub fn failed(&mut self, what: &str, error: &str) -> bool {
        if self.current.as_deref() == Some(error) {
            tracing::debug!(error, "{what} (still failing)");
            return false;
        }
        tracing::warn!(error, "{what}");
        self.current = Some(error.to_owned());
        true
    }

    /// Reports a success of `what`; returns whether it ended a fault.
    pub fn succeeded(&mut self, what: &str) -> bool {
        if self.current.take().is_some() {
            tracing::info!("{what}: working again");
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::FaultLog;

    #[test]
    fn the_same_failure_warns_once_until_it_ends() {
        let mut f = FaultLog::default();
        assert!(f.failed("renew", "auth"));
        assert!(!f.failed("renew", "auth"));
        assert!(f.failed("renew", "timeout"));
        assert!(f.succeeded("renew"));
        assert!(!f.succeeded("renew"));
        assert!(f.failed("renew", "timeout"));
    }
}

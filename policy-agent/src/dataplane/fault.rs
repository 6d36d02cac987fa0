//! Test-only seams: make map writes fail, to show what the agent does when the kernel
//! refuses one (`tests/tests/lab/write_failure.rs`), and make attaching to chosen interfaces fail.
//! Armed only by the environment variables [`FAIL_WRITES_ENV`] and [`FAIL_ATTACH_ENV`], which
//! nothing sets outside tests; unarmed, they cost one branch per map write or attachment.

/// `SYNCS:SKIP:COUNT`: once the agent has programmed `SYNCS` states, let `SKIP` map writes
/// through, then fail the next `COUNT`.
pub const FAIL_WRITES_ENV: &str = "PALISADE_TEST_FAIL_WRITES";

/// `GLOB` or `GLOB:COUNT`: interface names whose attachment fails (`tests/tests/
/// attach_failure.rs`), every time or the first `COUNT` times for each. The agent must go on
/// attaching the others, report these, and try again soon.
pub const FAIL_ATTACH_ENV: &str = "PALISADE_TEST_FAIL_ATTACH";

/// Which attachments fail on purpose (from [`FAIL_ATTACH_ENV`]).
#[derive(Debug, Clone)]
pub struct AttachFaults {
    interfaces: glob::Pattern,
    /// Attempts that fail per interface; `None`: all of them.
    attempts: Option<u32>,
    failed: std::collections::BTreeMap<String, u32>,
}

impl AttachFaults {
    pub fn parse(value: &str) -> Result<Self, String> {
        let (pattern, attempts) = match value.rsplit_once(':') {
            Some((pattern, count)) => {
                let count = count
                    .trim()
                    .parse()
                    .map_err(|e| format!("{count:?} after ':' is not a count: {e}"))?;
                (pattern, Some(count))
            }
            None => (value, None),
        };
        let interfaces =
            glob::Pattern::new(pattern).map_err(|e| format!("{pattern:?} is not a glob: {e}"))?;
        Ok(Self {
            interfaces,
            attempts,
            failed: Default::default(),
        })
    }

    /// Whether this attempt to attach to `interface` fails (counted).
    pub fn next_fails(&mut self, interface: &str) -> bool {
        if !self.interfaces.matches(interface) {
            return false;
        }
        let failed = self.failed.entry(interface.to_owned()).or_default();
        if self.attempts.is_some_and(|limit| *failed >= limit) {
            return false;
        }
        *failed += 1;
        true
    }
}

/// When to arm which faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Successful syncs still to come before the faults are armed.
    pub after_syncs: u32,
    pub faults: WriteFaults,
}

impl FaultPlan {
    /// From [`FAIL_WRITES_ENV`]'s value; `None` for anything else than `SYNCS:SKIP:COUNT`.
    pub fn parse(value: &str) -> Option<Self> {
        let mut fields = value.split(':').map(|f| f.trim().parse::<u32>().ok());
        let plan = Self {
            after_syncs: fields.next()??,
            faults: WriteFaults {
                skip: fields.next()??,
                fail: fields.next()??,
            },
        };
        fields.next().is_none().then_some(plan)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteFaults {
    /// Writes still to let through before failing.
    pub skip: u32,
    /// Writes still to fail.
    pub fail: u32,
}

impl WriteFaults {
    /// Whether the next write fails.
    pub fn next_fails(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            false
        } else if self.fail > 0 {
            self.fail -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_then_fails_then_lets_everything_through() {
        let plan = FaultPlan::parse("3:2:1").expect("a valid value");
        assert_eq!(plan.after_syncs, 3);
        let mut faults = plan.faults;
        let outcomes: Vec<bool> = (0..5).map(|_| faults.next_fails()).collect();
        assert_eq!(outcomes, [false, false, true, false, false]);
        for invalid in ["2:1", "a:1:1", "1:1:1:1", ""] {
            assert_eq!(FaultPlan::parse(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn attach_faults_fail_every_time_or_the_first_count_times() {
        let mut always = AttachFaults::parse("plh1").expect("a glob");
        assert!((0..5).all(|_| always.next_fails("plh1")));
        assert!(!always.next_fails("plh2"));
        let mut twice = AttachFaults::parse("plh*:2").expect("a glob and a count");
        let outcomes: Vec<bool> = (0..3).map(|_| twice.next_fails("plh1")).collect();
        assert_eq!(outcomes, [true, true, false]);
        assert!(twice.next_fails("plh2"), "counted per interface");
        assert!(AttachFaults::parse("plh1:x").is_err());
        assert!(AttachFaults::parse("[").is_err());
    }
}

//! The campaign's cases (a marker, a capture, an expectation each) and what was received.

use std::collections::BTreeMap;

use palisade_tests::crafted::{self, Frame};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum At {
    Victim,
    Client,
    Attacker,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Expect {
    /// A denied case: delivered 0 times.
    Nothing,
    /// A positive control: delivered at least once.
    Delivered,
    /// Shown, not checked: policy judges these packets alone and may allow them.
    Shown,
}

pub(super) struct Case {
    id: u16,
    class: &'static str,
    what: String,
    at: At,
    pub(super) expect: Expect,
}

/// Every case, and what each capture received of each.
#[derive(Default)]
pub(super) struct Ledger {
    pub(super) cases: Vec<Case>,
    received: BTreeMap<(At, u16), usize>,
}

impl Ledger {
    /// A new case; its id is its marker.
    pub(super) fn case(
        &mut self,
        class: &'static str,
        at: At,
        expect: Expect,
        what: String,
    ) -> u16 {
        let id = u16::try_from(self.cases.len() + 1).unwrap_or(u16::MAX);
        self.cases.push(Case {
            id,
            class,
            what,
            at,
            expect,
        });
        id
    }

    pub(super) fn count(&mut self, at: At, frames: &[Frame]) {
        for (case, n) in crafted::received_by_case(frames) {
            *self.received.entry((at, case)).or_insert(0) += n;
        }
    }

    /// Each case's line, and the lines of those that failed.
    pub(super) fn judge(&self) -> (Vec<String>, Vec<String>) {
        let mut lines = Vec::new();
        let mut failed = Vec::new();
        for case in &self.cases {
            let got = self.received.get(&(case.at, case.id)).copied().unwrap_or(0);
            let ok = match case.expect {
                Expect::Nothing => got == 0,
                Expect::Delivered => got > 0,
                Expect::Shown => true,
            };
            let expect = match case.expect {
                Expect::Nothing => "0",
                Expect::Delivered => ">=1",
                Expect::Shown => "any",
            };
            let line = format!(
                "{} #{:<3} {:<8} expect {:<3} got {:<3} {}: {}",
                if ok { "ok  " } else { "FAIL" },
                case.id,
                format!("{:?}", case.at).to_lowercase(),
                expect,
                got,
                case.class,
                case.what
            );
            if !ok {
                failed.push(line.clone());
            }
            lines.push(line);
        }
        (lines, failed)
    }
}

//! Judging samples against the policy in force at their instant.
//!
//! A change is written at `written` and reported programmed at `programmed` (the agent's
//! status names the new digest; for a killed agent, its successor's). Until a change is
//! written the previous state is in force; once it is reported programmed the new one is;
//! in between either may be, and nothing else. So a sample may see the verdict of every state
//! that was possibly in force at some instant of its interval; a verdict that none of them
//! gives is a violation (a flow both states allow dropped, one both deny passing). A sample
//! whose interval lies wholly where one state is certainly in force is *definite*.

use std::time::Instant;

use super::prober::Sample;

/// One change, in the order they were made: `state` is the index of the state it leads to.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub written: Instant,
    pub programmed: Instant,
    pub state: usize,
}

/// The verdicts of every state for every flow: `passes[state][flow]`.
#[derive(Debug, Clone)]
pub struct Verdicts {
    pub passes: Vec<Vec<bool>>,
}

/// What the samples showed.
#[derive(Debug, Default)]
pub struct Judgement {
    pub samples: usize,
    /// Samples wholly inside the span where one state was certainly in force.
    pub definite: usize,
    /// Samples that passed / failed.
    pub passed: usize,
    pub failed: usize,
    pub violations: usize,
    /// The first few violations, described.
    pub examples: Vec<String>,
}

const EXAMPLES: usize = 10;

/// Judges each flow's samples (`samples[flow]`), the state before the first change being
/// `initial`. `changes` must be in order, each programmed before the next was written.
pub fn judge(
    initial: usize,
    changes: &[Change],
    verdicts: &Verdicts,
    flow_names: &[String],
    samples: &[Vec<Sample>],
    origin: Instant,
) -> Judgement {
    // Segment 0 is the initial state; segment k (1-based) the state change k-1 leads to.
    let states: Vec<usize> = std::iter::once(initial)
        .chain(changes.iter().map(|c| c.state))
        .collect();
    let mut judgement = Judgement::default();
    for (flow, flow_samples) in samples.iter().enumerate() {
        for sample in flow_samples {
            judgement.samples += 1;
            if sample.passed {
                judgement.passed += 1;
            } else {
                judgement.failed += 1;
            }
            // Segment k may be in force from changes[k-1].written (k > 0) until
            // changes[k].programmed (k < len). The overlapping segments are contiguous.
            let first = changes.partition_point(|c| c.programmed <= sample.start);
            let last = changes.partition_point(|c| c.written <= sample.end);
            let possible = &states[first..=last];
            if first == last {
                judgement.definite += 1;
            }
            let expected = |state: usize| {
                verdicts
                    .passes
                    .get(state)
                    .and_then(|v| v.get(flow))
                    .copied()
            };
            if possible.iter().any(|s| expected(*s) == Some(sample.passed)) {
                continue;
            }
            judgement.violations += 1;
            if judgement.examples.len() < EXAMPLES {
                judgement.examples.push(format!(
                    "{}: {} at {:.3}..{:.3} s, where states {:?} were possible (they {})",
                    flow_names.get(flow).map_or("?", String::as_str),
                    if sample.passed { "passed" } else { "failed" },
                    sample.start.duration_since(origin).as_secs_f64(),
                    sample.end.duration_since(origin).as_secs_f64(),
                    possible,
                    if sample.passed { "deny it" } else { "allow it" },
                ));
            }
        }
    }
    judgement
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(origin: Instant, ms: u64) -> Instant {
        origin + Duration::from_millis(ms)
    }

    #[test]
    fn only_a_verdict_no_possible_state_gives_is_a_violation() {
        let origin = Instant::now();
        // State 0 allows flow 0, state 1 denies it; a change written at 100, programmed at 200.
        let verdicts = Verdicts {
            passes: vec![vec![true], vec![false]],
        };
        let changes = [Change {
            written: at(origin, 100),
            programmed: at(origin, 200),
            state: 1,
        }];
        let sample = |from, to, passed| Sample {
            start: at(origin, from),
            end: at(origin, to),
            passed,
        };
        let samples = vec![vec![
            sample(0, 50, true),    // before: allowed, fine
            sample(0, 50, false),   // before: dropped, a violation
            sample(90, 150, false), // across the write: either
            sample(150, 160, true), // between: either
            sample(210, 260, true), // after: passed, a violation
            sample(210, 260, false),
        ]];
        let j = judge(0, &changes, &verdicts, &["f".into()], &samples, origin);
        assert_eq!((j.samples, j.definite, j.violations), (6, 4, 2));
    }
}

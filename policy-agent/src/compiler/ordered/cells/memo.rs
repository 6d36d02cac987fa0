//! The cells of one content for many peers, each computed once per kind of peer: the peers
//! of a table fall into a handful of kinds, so only the matching is done per peer. Separate
//! because it is the engine's entry point, and caching is a job of its own.

use std::collections::HashMap;

use super::{Peer, PeerVerdicts, grid::cell_of, matching::PeerMatches};
use crate::compiler::ordered::{
    CalicoContext, KubernetesPort, Matcher, OrderedContent, PortRule, source_ports::SourceClasses,
};

/// What a content's cell depends on for a peer: which rules match it apart from protocol and
/// port, its family, and its named ports (only when a rule names a peer's port).
type CellKey = (Vec<bool>, Option<bool>, Vec<(u8, String, u16)>);

/// The cells of one content for many peers, each computed once per distinct [`CellKey`]: a
/// table's thousands of peers fall into a handful of those, so the cuts and walks are done a
/// handful of times, and only the matching is done per peer. Cells are handed out by number
/// ([`VerdictMemo::get`]), so equal cells are one value.
pub struct VerdictMemo<'c> {
    content: &'c OrderedContent,
    sources: Option<SourceClasses>,
    named_ports: bool,
    numbers: HashMap<CellKey, usize>,
    cells: Vec<PeerVerdicts>,
}

impl<'c> VerdictMemo<'c> {
    pub fn new(content: &'c OrderedContent) -> Self {
        let named_ports = content
            .tiers
            .iter()
            .flat_map(|tier| &tier.policies)
            .flat_map(|policy| &policy.rules)
            .any(|rule| match &rule.matcher {
                Matcher::Calico(calico) => calico
                    .ports
                    .iter()
                    .chain(&calico.not_ports)
                    .flatten()
                    .any(|port| matches!(port, PortRule::PeerNamed(_))),
                Matcher::Kubernetes(k8s) => k8s
                    .ports
                    .iter()
                    .flatten()
                    .any(|port| matches!(port, KubernetesPort::PeerNamed { .. })),
            });
        Self {
            content,
            sources: SourceClasses::of(content),
            named_ports,
            numbers: HashMap::new(),
            cells: Vec::new(),
        }
    }

    /// The content's source-port classes, when its rules match source ports.
    pub fn source_classes(&self) -> Option<&SourceClasses> {
        self.sources.as_ref()
    }

    /// The cell numbered `number` by [`VerdictMemo::number`].
    pub fn get(&self, number: usize) -> &PeerVerdicts {
        &self.cells[number]
    }

    /// How many distinct cells the memo holds (numbers are `0..len`).
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// The number of the verdicts of the content for `peer` (over every protocol and port),
    /// computed only when no peer seen alike came before.
    pub fn number(&mut self, context: &CalicoContext, peer: &Peer<'_>) -> usize {
        let matching = PeerMatches::new(self.content, context, peer);
        let named = if self.named_ports {
            matching
                .named()
                .map(|(protocol, name, number)| (protocol, name.clone(), number))
                .collect()
        } else {
            Vec::new()
        };
        let key = (
            matching.matches.iter().flatten().copied().collect(),
            peer.v6,
            named,
        );
        if let Some(number) = self.numbers.get(&key) {
            return *number;
        }
        let number = self.cells.len();
        self.cells.push(cell_of(&matching, self.sources.as_ref()));
        self.numbers.insert(key, number);
        number
    }
}

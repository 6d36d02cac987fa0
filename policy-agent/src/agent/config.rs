//! What the agent is told to do: where the cluster comes from, which interfaces carry the
//! programs, where to serve and report, the maps' capacities and the flow records' bounds.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::dataplane::Capacities;

/// Where the cluster comes from.
#[derive(Debug, Clone)]
pub enum DatastoreConfig {
    /// A directory of manifests, watched with inotify.
    Files(PathBuf),
    /// The API server: the kubeconfig file given, else the usual inference (`KUBECONFIG`,
    /// `~/.kube/config`, then the in-cluster service account).
    Kubernetes { kubeconfig: Option<PathBuf> },
}

/// Which interfaces carry the programs.
#[derive(Debug, Clone)]
pub enum InterfaceSelection {
    /// The interfaces the node routes its endpoints' addresses through: the host route a
    /// routed CNI installs for each pod (Calico's `cali*`, kindnet's and other ptp CNIs'
    /// `veth*`). The default: nothing to configure per CNI.
    Routed,
    /// Every interface whose name matches (`--interface-pattern`). Bridge CNIs such as flannel
    /// route pods through the bridge (`cni0`), so their per-pod `veth*` ports must be named.
    Pattern(glob::Pattern),
}

impl InterfaceSelection {
    /// Whether host routes through `interface` bind endpoint addresses to it.
    pub(super) fn routes_through(&self, interface: &str) -> bool {
        match self {
            InterfaceSelection::Routed => true,
            InterfaceSelection::Pattern(pattern) => pattern.matches(interface),
        }
    }
}

pub struct Config {
    pub datastore: DatastoreConfig,
    /// How often the Kubernetes datastore asks again for CRDs it found not served.
    pub crd_rediscovery: Duration,
    pub bpffs: PathBuf,
    pub interfaces: InterfaceSelection,
    /// Which other interfaces get the post-translation hook (`--uplinks`); none when `None`.
    pub uplinks: Option<glob::Pattern>,
    pub status_file: Option<PathBuf>,
    pub node_name: Option<String>,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`; nowhere when `None`.
    pub health_addr: Option<SocketAddr>,
    /// Write a flow event for every denied packet policy decides, not only for Calico `Log`
    /// rules.
    pub log_denies: bool,
    /// Ports a host endpoint always accepts and may always use.
    pub failsafe: crate::compiler::Failsafe,
    /// How many entries the policy maps are created to hold.
    pub capacities: Capacities,
    /// How often to compare the policy maps with the applied state and repair drift; never
    /// when `None`.
    pub resync: Option<Duration>,
    /// Where to serve the web view and flow records (`GET /`, `/flows`, `/explain`); when
    /// set, the agent reads the datapath's flow events itself (`policy-agent flows --agent`),
    /// else `policy-agent flows` reads the pinned ring.
    pub ui_addr: Option<SocketAddr>,
    /// The flow records' window and bounds.
    pub flow_limits: crate::flow_records::Limits,
}

//! Why a scenario cannot be run.

use super::*;

/// Why a scenario cannot be run.
#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("reading scenario {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing scenario at {at}")]
    Parse {
        at: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{at}: {key} is declared twice")]
    Duplicate { at: String, key: ObjectKey },
    #[error("{at}: invalid Pod manifest")]
    InvalidPod {
        at: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{at}: pod {pod} is in namespace {namespace}, which resources do not declare")]
    UndeclaredNamespace {
        at: String,
        pod: PodRef,
        namespace: String,
    },
    #[error("{at}: `{value}` is not an IP address")]
    BadAddress { at: String, value: String },
    #[error("{at}: {detail}")]
    BadPort { at: String, detail: String },
    #[error("address {address} is given to both {first} and {second}")]
    DuplicateAddress {
        address: IpAddr,
        first: PodRef,
        second: PodRef,
    },
    #[error("{count} pods declared; the lab runs at most {max}")]
    TooManyPods { count: usize, max: usize },
    #[error("{count} steps; the lab runs at most {max}")]
    TooManySteps { count: usize, max: usize },
    #[error("{at}: {count} probes; a step runs at most {max}")]
    TooManyProbes {
        at: String,
        count: usize,
        max: usize,
    },
    #[error(
        "{at}: pod {pod} is not declared in resources (steps may change a pod's labels, not add pods)"
    )]
    UnknownPod { at: String, pod: PodRef },
    #[error("{at}: pod {pod} changes its addresses; a step may only change labels")]
    PodAddressChanged { at: String, pod: PodRef },
    #[error("{at}: pod {pod} moves to another node; a step may only change labels")]
    PodNodeChanged { at: String, pod: PodRef },
    #[error(
        "{at}: `{value}` is not a node name (a DNS subdomain: lowercase letters, digits, `-` and `.`)"
    )]
    BadNodeName { at: String, value: String },
    #[error("{count} nodes named; the lab runs at most {max} besides its default node")]
    TooManyNodes { count: usize, max: usize },
    #[error("{at}: pod {pod} has no IPv6 address (list one in status.podIPs)")]
    NoIpv6 { at: String, pod: PodRef },
    #[error("{at}: pod {pod} has no IPv4 address")]
    NoIpv4 { at: String, pod: PodRef },
    #[error("{at}: {detail}")]
    BadService { at: String, detail: String },
    #[error("{at}: port 0 cannot be probed")]
    PortZero { at: String },
    #[error("{at}: ICMP probes have no port")]
    IcmpPort { at: String },
    #[error(
        "{at}: keep {name:?}: only an allowed TCP or UDP probe opening a new connection can keep \
         it, under a name not kept before"
    )]
    BadKeep { at: String, name: String },
    #[error(
        "{at}: over {name:?}: no earlier step kept a connection by that name between these pods \
         on this port and protocol"
    )]
    BadOver { at: String, name: String },
    #[error("{at}: timeoutMs must be between 1 and {max}")]
    BadTimeout { at: String, max: u64 },
    #[error("{at}: {key} does not exist at this step")]
    DeleteMissing { at: String, key: ObjectKey },
    #[error(
        "{at}: `{name}` is not a plain file name (no `/`, no leading `.`, ending in .yaml, .yml or .json)"
    )]
    BadFileName { at: String, name: String },
    #[error("{at}: file `{name}` was not written by an earlier step")]
    RemoveMissing { at: String, name: String },
    #[error("{at}: an expected error must be a non-empty substring")]
    EmptyExpectedError { at: String },
    #[error(
        "{at}: HostEndpoint {name} has no spec.node; the lab needs it to know which node's \
         interface the host endpoint is"
    )]
    HostEndpointNoNode { at: String, name: String },
    #[error(
        "{at}: HostEndpoint {name} has no spec.expectedIPs; the lab needs them to address the \
         host endpoint's interface (and probes to reach it)"
    )]
    HostEndpointNoAddresses { at: String, name: String },
    #[error("{at}: HostEndpoint {name}: expected IP `{value}` {why}")]
    HostEndpointBadAddress {
        at: String,
        name: String,
        value: String,
        why: String,
    },
    #[error("{at}: HostEndpoint {name}: interfaceName `{value}` {why}")]
    HostEndpointBadInterface {
        at: String,
        name: String,
        value: String,
        why: &'static str,
    },
    #[error(
        "HostEndpoints {first} (interface {first_interface}) and {second} (interface \
         {second_interface}) are both on node {node}: the lab gives a node one interface towards \
         the other nodes, named after its host endpoint, so host endpoints of one node must name \
         the same interface"
    )]
    HostEndpointInterfaceClash {
        node: String,
        first: String,
        first_interface: String,
        second: String,
        second_interface: String,
    },
    #[error(
        "{at}: HostEndpoint {name} changes its node, interfaceName or expectedIPs; the lab builds \
         host interfaces once, so a step may change only its labels, ports and profiles"
    )]
    HostEndpointChanged { at: String, name: String },
    #[error("{at}: HostEndpoint {name} has no IPv{family} address in spec.expectedIPs")]
    HostEndpointNoAddress {
        at: String,
        name: String,
        family: u8,
    },
    #[error(
        "{at}: `{reference}` names both HostEndpoint {name} and a pod in namespace \
         {HOST_ENDPOINT_PREFIX}; rename one"
    )]
    AmbiguousEndpoint {
        at: String,
        reference: PodRef,
        name: String,
    },
    #[error("{at}: `{reference}`: no HostEndpoint {name} in resources or any step's apply")]
    UnknownHostEndpoint {
        at: String,
        reference: PodRef,
        name: String,
    },
}

//! The collections the stand-in serves, their paths, API versions and RBAC names.

use serde_json::Value;

/// The collections, as kube-rs requests them cluster-wide: the Kubernetes ones, Calico's
/// custom resources and network-policy-api's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    Pod,
    NetworkPolicy,
    Service,
    EndpointSlice,
    GlobalNetworkPolicy,
    /// Calico's namespaced NetworkPolicy (`crd.projectcalico.org/v1`).
    CalicoNetworkPolicy,
    Tier,
    GlobalNetworkSet,
    NetworkSet,
    HostEndpoint,
    /// Calico's staged policies (`crd.projectcalico.org/v1`).
    StagedGlobalNetworkPolicy,
    StagedNetworkPolicy,
    StagedKubernetesNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha2`.
    ClusterNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1`.
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1`.
    BaselineAdminNetworkPolicy,
}

/// Calico's custom resources' API version.
pub const CALICO_API_VERSION: &str = "crd.projectcalico.org/v1";
/// ClusterNetworkPolicy's API version (network-policy-api v0.2.0).
pub const CNP_API_VERSION: &str = "policy.networking.k8s.io/v1alpha2";
/// AdminNetworkPolicy's and BaselineAdminNetworkPolicy's (network-policy-api v0.1.x).
pub const ANP_API_VERSION: &str = "policy.networking.k8s.io/v1alpha1";
/// The custom group versions, whose CRDs a test may "uninstall".
pub const CUSTOM_API_VERSIONS: [&str; 3] = [CALICO_API_VERSION, CNP_API_VERSION, ANP_API_VERSION];

impl Kind {
    pub const ALL: [Kind; 17] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::NetworkPolicy,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::GlobalNetworkPolicy,
        Kind::CalicoNetworkPolicy,
        Kind::Tier,
        Kind::GlobalNetworkSet,
        Kind::NetworkSet,
        Kind::HostEndpoint,
        Kind::StagedGlobalNetworkPolicy,
        Kind::StagedNetworkPolicy,
        Kind::StagedKubernetesNetworkPolicy,
        Kind::ClusterNetworkPolicy,
        Kind::AdminNetworkPolicy,
        Kind::BaselineAdminNetworkPolicy,
    ];

    pub const KUBERNETES: [Kind; 5] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::NetworkPolicy,
        Kind::Service,
        Kind::EndpointSlice,
    ];

    /// Calico's custom resources, its staged policies included.
    pub const CALICO: [Kind; 9] = [
        Kind::GlobalNetworkPolicy,
        Kind::CalicoNetworkPolicy,
        Kind::Tier,
        Kind::GlobalNetworkSet,
        Kind::NetworkSet,
        Kind::HostEndpoint,
        Kind::StagedGlobalNetworkPolicy,
        Kind::StagedNetworkPolicy,
        Kind::StagedKubernetesNetworkPolicy,
    ];

    /// network-policy-api's.
    pub const CLUSTER_POLICY: [Kind; 3] = [
        Kind::ClusterNetworkPolicy,
        Kind::AdminNetworkPolicy,
        Kind::BaselineAdminNetworkPolicy,
    ];

    pub fn is_calico(self) -> bool {
        Kind::CALICO.contains(&self)
    }

    /// Whether a CRD defines it (Calico's, network-policy-api's): the server may not serve it.
    pub fn is_custom(self) -> bool {
        !Kind::KUBERNETES.contains(&self)
    }

    pub(super) fn path(self) -> String {
        match self {
            Kind::Namespace => "/api/v1/namespaces".to_owned(),
            Kind::Pod => "/api/v1/pods".to_owned(),
            Kind::NetworkPolicy => "/apis/networking.k8s.io/v1/networkpolicies".to_owned(),
            Kind::Service => "/api/v1/services".to_owned(),
            Kind::EndpointSlice => "/apis/discovery.k8s.io/v1/endpointslices".to_owned(),
            _ => format!("/apis/{}/{}", self.api_version(), self.rbac().1),
        }
    }

    /// The object's `kind` field.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::NetworkPolicy | Kind::CalicoNetworkPolicy => "NetworkPolicy",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            Kind::Tier => "Tier",
            Kind::GlobalNetworkSet => "GlobalNetworkSet",
            Kind::NetworkSet => "NetworkSet",
            Kind::HostEndpoint => "HostEndpoint",
            Kind::StagedGlobalNetworkPolicy => "StagedGlobalNetworkPolicy",
            Kind::StagedNetworkPolicy => "StagedNetworkPolicy",
            Kind::StagedKubernetesNetworkPolicy => "StagedKubernetesNetworkPolicy",
            Kind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            Kind::AdminNetworkPolicy => "AdminNetworkPolicy",
            Kind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
        }
    }

    /// The kind as the agent's datastore names it in errors and digests: Calico's carry their
    /// API version (network-policy-api's names are unique: they do not).
    pub fn qualified_name(self) -> String {
        if self.is_calico() {
            format!("{} ({CALICO_API_VERSION})", self.name())
        } else {
            self.name().to_owned()
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Pod | Kind::Service => "v1",
            Kind::NetworkPolicy => "networking.k8s.io/v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::ClusterNetworkPolicy => CNP_API_VERSION,
            Kind::AdminNetworkPolicy | Kind::BaselineAdminNetworkPolicy => ANP_API_VERSION,
            _ => CALICO_API_VERSION,
        }
    }

    /// (API group, resource) as RBAC names them.
    pub fn rbac(self) -> (&'static str, &'static str) {
        match self {
            Kind::Namespace => ("", "namespaces"),
            Kind::Pod => ("", "pods"),
            Kind::NetworkPolicy => ("networking.k8s.io", "networkpolicies"),
            Kind::Service => ("", "services"),
            Kind::EndpointSlice => ("discovery.k8s.io", "endpointslices"),
            Kind::GlobalNetworkPolicy => ("crd.projectcalico.org", "globalnetworkpolicies"),
            Kind::CalicoNetworkPolicy => ("crd.projectcalico.org", "networkpolicies"),
            Kind::Tier => ("crd.projectcalico.org", "tiers"),
            Kind::GlobalNetworkSet => ("crd.projectcalico.org", "globalnetworksets"),
            Kind::NetworkSet => ("crd.projectcalico.org", "networksets"),
            Kind::HostEndpoint => ("crd.projectcalico.org", "hostendpoints"),
            Kind::StagedGlobalNetworkPolicy => {
                ("crd.projectcalico.org", "stagedglobalnetworkpolicies")
            }
            Kind::StagedNetworkPolicy => ("crd.projectcalico.org", "stagednetworkpolicies"),
            Kind::StagedKubernetesNetworkPolicy => {
                ("crd.projectcalico.org", "stagedkubernetesnetworkpolicies")
            }
            Kind::ClusterNetworkPolicy => ("policy.networking.k8s.io", "clusternetworkpolicies"),
            Kind::AdminNetworkPolicy => ("policy.networking.k8s.io", "adminnetworkpolicies"),
            Kind::BaselineAdminNetworkPolicy => {
                ("policy.networking.k8s.io", "baselineadminnetworkpolicies")
            }
        }
    }

    pub fn is_namespaced(self) -> bool {
        matches!(
            self,
            Kind::Pod
                | Kind::NetworkPolicy
                | Kind::Service
                | Kind::EndpointSlice
                | Kind::CalicoNetworkPolicy
                | Kind::NetworkSet
                | Kind::StagedNetworkPolicy
                | Kind::StagedKubernetesNetworkPolicy
        )
    }

    /// The kind of an object: Calico's when its `apiVersion` says so, else the Kubernetes one
    /// of that name.
    pub(super) fn of(object: &Value) -> Option<Kind> {
        let name = object["kind"].as_str()?;
        let calico = object["apiVersion"].as_str() == Some(CALICO_API_VERSION);
        Kind::ALL
            .into_iter()
            .find(|k| k.is_calico() == calico && k.name() == name)
    }
}

/// (kind, namespace, name); the namespace is empty for Namespaces.
pub type Key = (Kind, String, String);

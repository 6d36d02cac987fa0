//! A node's programs in a pin directory of their own, run hook by hook on frames.

use palisade_tests::scratch::Scratch;
use policy_agent::{
    compiler::{Compiler, MapContents, Scope},
    dataplane::{Datapath, service_maps},
    datastore::file::FileDatastore,
    replay::Direction,
};

use super::cluster::{CLIENT_EGRESS, CLUSTER, NODE};

pub(super) struct Node {
    pub(super) datapath: Datapath,
    compiler: Compiler,
    maps: MapContents,
    scope: Scope,
    /// The manifests and pins, removed however the test ends (a failed load included).
    pub(super) scratch: Scratch,
}

impl Node {
    pub(super) fn new(test: &str) -> Self {
        let scratch = Scratch::new("services", test);
        let datapath = Datapath::load(&scratch.pins).expect("loading the datapath");
        let mut node = Self {
            datapath,
            compiler: Compiler::new(),
            maps: MapContents::default(),
            scope: Scope {
                node_name: None,
                host_addrs: vec![NODE.into()],
            },
            scratch,
        };
        node.write("cluster.yaml", CLUSTER);
        node.write("client-egress.yaml", CLIENT_EGRESS);
        node.sync();
        node
    }

    pub(super) fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.scratch.manifests.join(name), contents).expect("writing a manifest");
    }

    /// Compiles and programs, as the agent does: policy maps, then the Service maps.
    pub(super) fn sync(&mut self) {
        let snapshot = FileDatastore::new(&self.scratch.manifests)
            .load()
            .expect("reading manifests");
        assert!(snapshot.errors.is_empty(), "{:?}", snapshot.errors);
        let maps = self.compiler.compile(&snapshot.cluster, &self.scope).maps;
        self.datapath.apply(&self.maps, &maps).expect("programming");
        self.maps = std::sync::Arc::unwrap_or_clone(maps);
        self.datapath
            .sync_services(&service_maps(&snapshot.cluster, &self.scope))
            .expect("programming the Service maps");
    }

    pub(super) fn run(&self, direction: Direction, frame: &[u8]) -> bool {
        self.datapath
            .test_run(direction, frame, 1)
            .expect("BPF_PROG_TEST_RUN")
            .allowed()
    }

    pub(super) fn after_nat(&self, frame: &[u8]) -> bool {
        self.datapath
            .test_run_after_nat(frame, 1)
            .expect("BPF_PROG_TEST_RUN")
            .allowed()
    }

    /// A packet the client sends to a Service frontend and kube-proxy translates to
    /// `backend:port`: its interface, then (if it passed) the post-translation hook and the
    /// backend's interface. Whether it arrived.
    pub(super) fn send_via(&self, frontend: &[u8], translated: &[u8]) -> bool {
        self.run(Direction::FromEndpoint, frontend)
            && self.after_nat(translated)
            && self.run(Direction::ToEndpoint, translated)
    }

    /// A reply the backend sends (`sent`) and the reverse translation turns into one from
    /// the frontend (`translated`): the backend's interface, then the client's.
    pub(super) fn reply_via(&self, sent: &[u8], translated: &[u8]) -> bool {
        self.run(Direction::FromEndpoint, sent)
            && self.after_nat(translated)
            && self.run(Direction::ToEndpoint, translated)
    }
}

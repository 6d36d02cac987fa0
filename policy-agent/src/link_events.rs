//! Link and route changes from the kernel (an rtnetlink socket subscribed to the link and
//! route multicast groups), so the agent attaches to a new endpoint interface and binds its
//! address as soon as the CNI creates them, instead of finding them on the next poll.
//!
//! The messages themselves are not parsed: any change means "rescan", and the rescan (list
//! interfaces, read the host routes) is what decides. That keeps one code path for start-up,
//! events and the periodic safety-net resync, and a message the kernel dropped (the socket's
//! buffer overran: `ENOBUFS`) is handled like any other change.

use std::{
    io,
    os::fd::{AsRawFd as _, OwnedFd},
};

use nix::{
    errno::Errno,
    sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
    },
};
use tokio::io::{Interest, unix::AsyncFd};

/// rtnetlink multicast groups: links, and IPv4/IPv6 routes (host routes to new pods).
const GROUPS: u32 = (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_ROUTE | libc::RTMGRP_IPV6_ROUTE) as u32;
/// Messages read per wake-up before yielding: a burst (hundreds of pods starting) is drained
/// across a few wake-ups instead of starving the agent's other work.
const MAX_DRAIN: usize = 1024;

pub struct LinkEvents {
    socket: AsyncFd<OwnedFd>,
    buffer: Vec<u8>,
}

impl LinkEvents {
    /// Subscribes in the network namespace of the calling thread.
    pub fn subscribe() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, GROUPS))?;
        // SAFETY: an `OwnedFd` always returns the descriptor it owns, which stays open until
        // the `AsyncFd` (its only owner) is dropped.
        let socket = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(Self {
            socket,
            buffer: vec![0; 64 * 1024],
        })
    }

    /// Waits until links or routes changed, and consumes what is queued.
    pub async fn changed(&mut self) -> io::Result<()> {
        loop {
            let mut ready = self.socket.readable().await?;
            let mut drained = 0;
            loop {
                match recv(
                    ready.get_inner().as_raw_fd(),
                    &mut self.buffer,
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(_) => drained += 1,
                    // Messages were lost: something changed, which is all we need to know.
                    Err(Errno::ENOBUFS) => drained += 1,
                    Err(Errno::EAGAIN) => {
                        ready.clear_ready();
                        break;
                    }
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
                if drained >= MAX_DRAIN {
                    break;
                }
            }
            if drained > 0 {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{process::Command, time::Duration};

    use super::*;

    /// In a network namespace of its own (this thread's), a new link is an event.
    #[test]
    fn a_new_link_is_an_event() {
        if !nix::unistd::geteuid().is_root() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("a_new_link_is_an_event needs root, and CI=true makes a skip a failure");
            }
            eprintln!(
                "\n!!! SKIPPED (not root): a_new_link_is_an_event creates a network namespace\n"
            );
            return;
        }
        // Its own thread: unshare changes the calling thread's namespace only, and the
        // namespace (with the veth pair) goes away with the thread.
        let outcome = std::thread::spawn(|| -> Result<(), String> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("unshare: {e}"))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut events = LinkEvents::subscribe().map_err(|e| e.to_string())?;
                // Nothing has changed yet.
                let quiet =
                    tokio::time::timeout(Duration::from_millis(100), events.changed()).await;
                if quiet.is_ok() {
                    return Err("an event before any change".to_owned());
                }
                // A child forked from this thread starts in its namespace.
                let status = Command::new("ip")
                    .args([
                        "link",
                        "add",
                        "palisade-t0",
                        "type",
                        "veth",
                        "peer",
                        "name",
                        "palisade-t1",
                    ])
                    .status()
                    .map_err(|e| format!("running ip: {e}"))?;
                if !status.success() {
                    return Err(format!("ip link add: {status}"));
                }
                tokio::time::timeout(Duration::from_secs(5), events.changed())
                    .await
                    .map_err(|_| "no event for the new link".to_owned())?
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("the test thread panicked"),
        }
    }
}

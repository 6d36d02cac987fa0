//! IP protocol numbers and the Ethernet header length the decision's modules share. The
//! parser (`packet`) keeps its own private copies, so that it stands alone.

pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const IPPROTO_SCTP: u8 = 132;
pub(crate) const IPPROTO_ICMP: u8 = 1;
pub(crate) const IPPROTO_ICMPV6: u8 = 58;
pub(crate) const ETH_HDR_LEN: u32 = 14;

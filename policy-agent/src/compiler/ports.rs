//! Port ranges as LPM prefixes over the big-endian port field of a rule key.

/// Splits the inclusive range `first..=last` into the fewest aligned blocks, each given as
/// (first port of the block, number of leading port bits that are fixed). A full 1..=65535
/// range takes 16 blocks; any range takes at most 30.
pub fn port_prefixes(first: u16, last: u16) -> Vec<(u16, u32)> {
    let mut blocks = Vec::new();
    let (mut lo, hi) = (u32::from(first), u32::from(last));
    while lo <= hi {
        // The largest block that starts at `lo` (alignment) and stays within `hi`.
        let mut size_bits = lo.trailing_zeros().min(16);
        while lo + (1 << size_bits) - 1 > hi {
            size_bits -= 1;
        }
        #[expect(clippy::cast_possible_truncation, reason = "lo <= hi <= 65535")]
        blocks.push((lo as u16, 16 - size_bits));
        lo += 1 << size_bits;
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(blocks: &[(u16, u32)]) -> Vec<u32> {
        blocks
            .iter()
            .flat_map(|&(start, bits)| {
                let size = 1u32 << (16 - bits);
                u32::from(start)..u32::from(start) + size
            })
            .collect()
    }

    #[test]
    fn single_port_is_one_full_prefix() {
        assert_eq!(port_prefixes(8000, 8000), vec![(8000, 16)]);
    }

    #[test]
    fn ranges_cover_exactly_their_ports() {
        for (first, last) in [
            (1, 65535),
            (80, 81),
            (1000, 2047),
            (32000, 32768),
            (0, 0),
            (65535, 65535),
        ] {
            let blocks = port_prefixes(first, last);
            assert!(
                blocks.len() <= 30,
                "{first}-{last}: {} blocks",
                blocks.len()
            );
            assert_eq!(
                expand(&blocks),
                (u32::from(first)..=u32::from(last)).collect::<Vec<_>>(),
                "{first}-{last}"
            );
        }
    }
}

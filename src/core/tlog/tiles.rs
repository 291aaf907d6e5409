//! C2SP tlog-tiles: tile paths, and the tree's complete subtrees hashed from fetched tiles (a
//! [`HashSource`] for `core::merkle`'s proof generator).

use std::collections::{BTreeMap, BTreeSet};

use super::{Hash, HashSource};

/// Path of a tile (`tile/<L>/<N>[.p/<W>]`) with N in 3-digit `x`-prefixed groups.
pub fn tile_path(level: u32, index: u64, width: u32) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    let n = groups.join("/");
    if width == 256 { format!("tile/{level}/{n}") } else { format!("tile/{level}/{n}.p/{width}") }
}

/// The tiles of a tree of `size` leaves: which tile (level, index, width) holds the complete
/// subtree `start, height`, and how to hash it from that tile's entries. A [`merkle::HashSource`]
/// over fetched tiles; [`TileSet::needed`] lists the tiles a computation will ask for (the
/// shapes of RFC 6962's recursions do not depend on hash values).
pub struct TileSet {
    pub size: u64,
    pub tiles: BTreeMap<(u32, u64), Vec<u8>>,
    /// Record requests instead of answering them.
    recording: bool,
    pub needed: BTreeSet<(u32, u64, u32)>,
}

impl TileSet {
    pub fn recorder(size: u64) -> Self {
        Self { size, tiles: BTreeMap::new(), recording: true, needed: BTreeSet::new() }
    }
    pub fn with_tiles(size: u64, tiles: BTreeMap<(u32, u64), Vec<u8>>) -> Self {
        Self { size, tiles, recording: false, needed: BTreeSet::new() }
    }
    /// Width of tile (level, index) in a tree of `self.size` leaves.
    pub fn width(&self, level: u32, index: u64) -> u32 {
        let entries = self.size.checked_shr(8 * level).unwrap_or(0);
        if (index + 1).saturating_mul(256) <= entries { 256 } else { (entries % 256) as u32 }
    }
}

impl HashSource for TileSet {
    type Error = String;
    fn complete(&mut self, start: u64, height: u32) -> Result<Hash, String> {
        let (level, r) = (height / 8, height % 8);
        let first = start >> (8 * level); // index of the first entry at tile level `level`
        let (index, pos) = (first / 256, (first % 256) as usize);
        let width = self.width(level, index);
        if self.recording {
            self.needed.insert((level, index, width));
            return Ok([0; 32]);
        }
        let tile = self.tiles.get(&(level, index)).ok_or_else(|| format!("tile {} not fetched", tile_path(level, index, width)))?;
        let count = 1usize << r;
        if (pos + count) * 32 > tile.len() {
            return Err(format!("tile {} is too short for entries {pos}..{}", tile_path(level, index, width), pos + count));
        }
        let mut layer: Vec<Hash> = (pos..pos + count).map(|i| tile[i * 32..i * 32 + 32].try_into().expect("32")).collect();
        while layer.len() > 1 {
            layer = layer.chunks(2).map(|c| crate::core::merkle::node_hash(&c[0], &c[1])).collect();
        }
        Ok(layer[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_reproduce_roots_and_proofs() {
        use crate::core::merkle;
        assert_eq!(tile_path(0, 1_234_067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(1, 5, 17), "tile/1/005.p/17");
        for size in [1u64, 2, 255, 256, 257, 1000, 70_000] {
            let leaves: Vec<Hash> = (0..size).map(|i| merkle::leaf_hash(&i.to_be_bytes())).collect();
            // build every tile the tree has, as a log would
            let mut tiles = BTreeMap::new();
            let mut level_entries = leaves.clone();
            let mut level = 0;
            while !level_entries.is_empty() {
                for (n, chunk) in level_entries.chunks(256).enumerate() {
                    tiles.insert((level, n as u64), chunk.concat());
                }
                level_entries = level_entries.chunks(256).filter(|c| c.len() == 256).map(merkle::root).collect();
                level += 1;
            }
            let mut ts = TileSet::with_tiles(size, tiles);
            assert_eq!(merkle::subtree(&mut ts, 0, size).unwrap(), merkle::root(&leaves), "root size {size}");
            for m in [1, size / 3, size - 1].into_iter().filter(|m| *m > 0 && *m < size) {
                assert_eq!(
                    merkle::consistency_proof_from(&mut ts, m, size).unwrap(),
                    merkle::consistency_proof(m as usize, &leaves),
                    "{m}->{size}"
                );
                let mut rec = TileSet::recorder(size);
                merkle::consistency_proof_from(&mut rec, m, size).unwrap();
                assert!(rec.needed.len() <= 2 * (64 - size.leading_zeros() as usize) + 2, "O(log n) tiles: {:?}", rec.needed);
            }
        }
    }
}

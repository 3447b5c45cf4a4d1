//! A graph node as the index pages hold it: two records, each sealed on its own when the index
//! is sealed.
//!
//! - The **element** record: the node's level, the heap row it stands for, and its vector.
//!   Written once, when the row is indexed.
//! - The **neighbour** record: the node's neighbour lists, one per level, each with a fixed
//!   number of slots (`2m` on level 0, `m` above), so that relinking rewrites a record of the
//!   same length in place. Rewritten whenever a list changes.
//!
//! Two records rather than one keep the write of a relink (and its WAL) to the small record: a
//! 768-dimension vector is 3 KB, the lists of a level-0 node with `m = 16` under 200 bytes.
//!
//! Plaintext layout, integers little-endian:
//! ```text
//! element:    format (1) | level (1) | heap block (4) | heap offset (2) | dims (2) | zero (2) | dims x f32
//! neighbours: format (1) | levels (1) | per level: count (2) | slots x (block (4) | offset (2))
//! ```
//!
//! In a sealed graph (`seal_element`, `seal_neighbours`) the vector and the neighbour lists are
//! crypto envelopes under the tenant's data key, with a context binding each to the index (a
//! random id made when the index is built), the node's place (block and line) and which of the
//! two records it is: a record copied to another place, index, tenant or node, or rewritten
//! under a key version other than its header's, does not open. The element's level and heap row
//! stay readable, so that VACUUM finds the nodes of removed rows without the tenant's key (also
//! once the tenant is shredded); they are in the envelope's context, so they cannot be changed
//! either. What a sealed graph shows is therefore its size, its nodes' levels and which rows
//! they stand for: not where any vector lies, nor which nodes are near each other.
//!
//! ```text
//! sealed element:    format 2 (1) | level (1) | heap block (4) | heap offset (2) | envelope of dims x f32
//! sealed neighbours: envelope of the plaintext neighbour record
//! ```

use zeroize::Zeroizing;

use crate::crypto::{self, Algorithm, CryptoError, DataKey, OpenedF32};
use crate::ids::TenantId;

use super::Params;

const FORMAT: u8 = 1;
const FORMAT_SEALED: u8 = 2;
/// A sealed element record's readable head: format, level, heap row.
const SEALED_HEAD: usize = 8;
/// The element record's head, a multiple of 4 so that the vector after it is aligned where
/// the record is (page items are 8-byte aligned).
pub const ELEMENT_HEAD: usize = 12;
const SLOT: usize = 6;

/// A place in a relation: a block and a line pointer (1-based, as PostgreSQL's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId {
    pub block: u32,
    pub offset: u16,
}

/// A node's element record.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub level: u8,
    /// The heap row (its TID).
    pub heap: ItemId,
    pub vector: Vec<f32>,
}

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("graph record is truncated or too long")]
    Length,
    #[error("graph record has an unknown format")]
    Format,
    #[error("graph record is inconsistent")]
    Inconsistent,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The length of an element record of `dims` dimensions.
pub fn element_len(dims: usize) -> usize {
    ELEMENT_HEAD + 4 * dims
}

/// The length of the neighbour record of a node on `level`.
pub fn neighbours_len(params: &Params, level: usize) -> usize {
    2 + (0..=level)
        .map(|l| 2 + SLOT * params.max_neighbours(l))
        .sum::<usize>()
}

pub fn encode_element(e: &Element) -> Result<Zeroizing<Vec<u8>>, RecordError> {
    if usize::from(e.level) > super::MAX_LEVEL || e.vector.len() > usize::from(u16::MAX) {
        return Err(RecordError::Inconsistent);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(element_len(e.vector.len())));
    out.push(FORMAT);
    out.push(e.level);
    out.extend_from_slice(&e.heap.block.to_le_bytes());
    out.extend_from_slice(&e.heap.offset.to_le_bytes());
    out.extend_from_slice(&(e.vector.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    for v in &e.vector {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// An element record's level and heap row, and its vector's bytes (little-endian f32s), without
/// copying the vector.
pub fn element_parts(bytes: &[u8]) -> Result<(u8, ItemId, &[u8]), RecordError> {
    if bytes.len() < ELEMENT_HEAD {
        return Err(RecordError::Length);
    }
    if bytes[0] != FORMAT {
        return Err(RecordError::Format);
    }
    let dims = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    if bytes.len() != element_len(dims) {
        return Err(RecordError::Length);
    }
    if usize::from(bytes[1]) > super::MAX_LEVEL || bytes[10..12] != [0, 0] {
        return Err(RecordError::Inconsistent);
    }
    let heap = ItemId {
        block: u32::from_le_bytes(bytes[2..6].try_into().expect("4 bytes")),
        offset: u16::from_le_bytes([bytes[6], bytes[7]]),
    };
    Ok((bytes[1], heap, &bytes[ELEMENT_HEAD..]))
}

/// An element record's level and heap row, plaintext or sealed (nothing is opened).
pub fn element_head(bytes: &[u8]) -> Result<(u8, ItemId), RecordError> {
    if bytes.len() < SEALED_HEAD {
        return Err(RecordError::Length);
    }
    if bytes[0] != FORMAT && bytes[0] != FORMAT_SEALED {
        return Err(RecordError::Format);
    }
    if usize::from(bytes[1]) > super::MAX_LEVEL {
        return Err(RecordError::Inconsistent);
    }
    let heap = ItemId {
        block: u32::from_le_bytes(bytes[2..6].try_into().expect("4 bytes")),
        offset: u16::from_le_bytes([bytes[6], bytes[7]]),
    };
    Ok((bytes[1], heap))
}

pub fn decode_element(bytes: &[u8]) -> Result<Element, RecordError> {
    let (level, heap, vector) = element_parts(bytes)?;
    Ok(Element {
        level,
        heap,
        vector: vector
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
    })
}

/// The neighbour record of a node whose lists (one per level, `0..=level`) are `lists`.
pub fn encode_neighbours(
    params: &Params,
    lists: &[Vec<ItemId>],
) -> Result<Zeroizing<Vec<u8>>, RecordError> {
    if lists.is_empty() || lists.len() > super::MAX_LEVEL + 1 {
        return Err(RecordError::Inconsistent);
    }
    let level = lists.len() - 1;
    let mut out = Zeroizing::new(Vec::with_capacity(neighbours_len(params, level)));
    out.push(FORMAT);
    out.push(lists.len() as u8);
    for (l, list) in lists.iter().enumerate() {
        let slots = params.max_neighbours(l);
        if list.len() > slots {
            return Err(RecordError::Inconsistent);
        }
        out.extend_from_slice(&(list.len() as u16).to_le_bytes());
        for id in list {
            out.extend_from_slice(&id.block.to_le_bytes());
            out.extend_from_slice(&id.offset.to_le_bytes());
        }
        let len = out.len() + SLOT * (slots - list.len());
        out.resize(len, 0);
    }
    Ok(out)
}

pub fn decode_neighbours(params: &Params, bytes: &[u8]) -> Result<Vec<Vec<ItemId>>, RecordError> {
    if bytes.len() < 2 {
        return Err(RecordError::Length);
    }
    if bytes[0] != FORMAT {
        return Err(RecordError::Format);
    }
    let levels = usize::from(bytes[1]);
    if levels == 0 || levels > super::MAX_LEVEL + 1 {
        return Err(RecordError::Inconsistent);
    }
    if bytes.len() != neighbours_len(params, levels - 1) {
        return Err(RecordError::Length);
    }
    let mut at = 2;
    let mut lists = Vec::with_capacity(levels);
    for l in 0..levels {
        let slots = params.max_neighbours(l);
        let count = usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
        if count > slots {
            return Err(RecordError::Inconsistent);
        }
        at += 2;
        let list = bytes[at..at + SLOT * count]
            .chunks_exact(SLOT)
            .map(|s| ItemId {
                block: u32::from_le_bytes(s[0..4].try_into().expect("4 bytes")),
                offset: u16::from_le_bytes([s[4], s[5]]),
            })
            .collect();
        lists.push(list);
        at += SLOT * slots;
    }
    Ok(lists)
}

/// Which of a node's two records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Element = 1,
    Neighbours = 2,
}

/// Where a sealed record lies: what its context binds it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The index's own random id (kept in its metapage).
    pub index: [u8; 16],
    pub at: ItemId,
    pub kind: Kind,
}

impl Place {
    fn context(&self) -> [u8; 27] {
        let mut c = [0u8; 27];
        c[..4].copy_from_slice(b"hnsw");
        c[4..20].copy_from_slice(&self.index);
        c[20..24].copy_from_slice(&self.at.block.to_be_bytes());
        c[24..26].copy_from_slice(&self.at.offset.to_be_bytes());
        c[26] = self.kind as u8;
        c
    }
}

/// The length of a sealed record of `plaintext_len` bytes under `key`.
pub fn sealed_len(key: &DataKey, plaintext_len: usize) -> usize {
    crypto::sealed_len(key.algorithm(), plaintext_len)
}

/// The length of a sealed element record of `dims` dimensions.
pub fn sealed_element_len(algorithm: Algorithm, dims: usize) -> usize {
    SEALED_HEAD + crypto::sealed_len(algorithm, 4 * dims)
}

/// The length of the sealed neighbour record of a node on `level`.
pub fn sealed_neighbours_len(algorithm: Algorithm, params: &Params, level: usize) -> usize {
    crypto::sealed_len(algorithm, neighbours_len(params, level))
}

/// The context a sealed element's envelope is bound to: its place and its readable head.
fn element_context(place: &Place, head: &[u8]) -> [u8; 27 + SEALED_HEAD] {
    let mut c = [0u8; 27 + SEALED_HEAD];
    c[..27].copy_from_slice(&place.context());
    c[27..].copy_from_slice(head);
    c
}

/// The element record of `e` sealed for the tenant at the node's place (`place.kind` is
/// `Element`).
pub fn seal_element(
    key: &DataKey,
    tenant: &TenantId,
    place: &Place,
    e: &Element,
) -> Result<Vec<u8>, RecordError> {
    if usize::from(e.level) > super::MAX_LEVEL
        || e.vector.len() > usize::from(u16::MAX)
        || place.kind != Kind::Element
    {
        return Err(RecordError::Inconsistent);
    }
    let mut out = vec![0u8; sealed_element_len(key.algorithm(), e.vector.len())];
    out[0] = FORMAT_SEALED;
    out[1] = e.level;
    out[2..6].copy_from_slice(&e.heap.block.to_le_bytes());
    out[6..8].copy_from_slice(&e.heap.offset.to_le_bytes());
    let context = element_context(place, &out[..SEALED_HEAD]);
    let plaintext = crypto::f32_plaintext(&e.vector);
    let (_, body) = out.split_at_mut(SEALED_HEAD);
    crypto::seal_into(key, tenant, &context, &plaintext, body)?;
    Ok(out)
}

/// Opens a sealed element record at `place` into `out` (its vector); `key_for` gives the
/// tenant's key of the envelope's version, or none if that version is gone (shredded).
pub fn open_element_into<'k>(
    key_for: impl FnOnce(u32) -> Option<&'k DataKey>,
    tenant: &TenantId,
    place: &Place,
    bytes: &[u8],
    out: &mut OpenedF32,
) -> Result<(), RecordError> {
    element_head(bytes)?;
    if bytes[0] != FORMAT_SEALED || place.kind != Kind::Element {
        return Err(RecordError::Format);
    }
    let envelope = &bytes[SEALED_HEAD..];
    let header = crypto::parse_header(envelope)?;
    let key = key_for(header.key_version).ok_or(CryptoError::Authentication)?;
    let context = element_context(place, &bytes[..SEALED_HEAD]);
    crypto::open_f32_into(key, tenant, &context, envelope, out)?;
    Ok(())
}

/// The key version a sealed record (either kind) was sealed under: what a rewrite of it uses
/// again, so that it keeps its length.
pub fn sealed_version(bytes: &[u8], kind: Kind) -> Result<u32, RecordError> {
    let envelope = match kind {
        Kind::Element => bytes.get(SEALED_HEAD..).ok_or(RecordError::Length)?,
        Kind::Neighbours => bytes,
    };
    Ok(crypto::parse_header(envelope)?.key_version)
}

/// The neighbour record of `lists` sealed for the tenant at the node's place (`place.kind` is
/// `Neighbours`).
pub fn seal_neighbours(
    key: &DataKey,
    tenant: &TenantId,
    place: &Place,
    params: &Params,
    lists: &[Vec<ItemId>],
) -> Result<Vec<u8>, RecordError> {
    if place.kind != Kind::Neighbours {
        return Err(RecordError::Inconsistent);
    }
    seal(key, tenant, place, &encode_neighbours(params, lists)?)
}

/// Opens and decodes a sealed neighbour record at `place`.
pub fn open_neighbours<'k>(
    key_for: impl FnOnce(u32) -> Option<&'k DataKey>,
    tenant: &TenantId,
    place: &Place,
    params: &Params,
    bytes: &[u8],
) -> Result<Vec<Vec<ItemId>>, RecordError> {
    if place.kind != Kind::Neighbours {
        return Err(RecordError::Format);
    }
    decode_neighbours(params, &open(key_for, tenant, place, bytes)?)
}

/// Seals a record's plaintext for the tenant, bound to its place.
pub fn seal(
    key: &DataKey,
    tenant: &TenantId,
    place: &Place,
    plaintext: &[u8],
) -> Result<Vec<u8>, RecordError> {
    Ok(crypto::seal(key, tenant, &place.context(), plaintext)?)
}

/// Opens a sealed record at `place`; `key_for` gives the tenant's key of a version (the one in
/// the envelope's header), or none if that version is gone (shredded).
pub fn open<'k>(
    key_for: impl FnOnce(u32) -> Option<&'k DataKey>,
    tenant: &TenantId,
    place: &Place,
    envelope: &[u8],
) -> Result<Zeroizing<Vec<u8>>, RecordError> {
    let header = crypto::parse_header(envelope)?;
    let key = key_for(header.key_version).ok_or(CryptoError::Authentication)?;
    Ok(crypto::open(key, tenant, &place.context(), envelope)?)
}

#[cfg(test)]
mod tests;

//! The change feed's positions, and the event ids a subscriber sees and resumes from.
//!
//! An event's place in the feed is its writing transaction's id, then the order in which it
//! was written ([`Position`]). A subscriber never sees a position: it would count every
//! tenant's writes. Its event ids are positions sealed with its tenant's data key, bound to
//! the tenant and to this use, so that an id reveals nothing, and one that was altered, made
//! up or taken from another tenant's feed is refused (as a bad `Last-Event-ID`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::crypto::{self, CryptoError, DataKey, TenantId};

/// Where an event lies in the feed: ordered by transaction id, then by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub xid: u64,
    pub id: i64,
}

/// What an event id's envelope is bound to, besides the tenant.
const CONTEXT: &[u8] = b"sealstore event id";

/// The longest event id accepted back (a sealed position is about 80 characters).
pub const MAX_EVENT_ID_LEN: usize = 256;

/// The event id of `position` in `tenant`'s feed: the position sealed under `key` (the
/// tenant's active data key), in URL-safe base64.
pub fn event_id(
    key: &DataKey,
    tenant: &TenantId,
    position: Position,
) -> Result<String, CryptoError> {
    let mut plain = [0u8; 16];
    plain[..8].copy_from_slice(&position.xid.to_be_bytes());
    plain[8..].copy_from_slice(&position.id.to_be_bytes());
    Ok(URL_SAFE_NO_PAD.encode(crypto::seal(key, tenant, CONTEXT, &plain)?))
}

/// Why an event id was refused. Deliberately one kind: the caller says "not an event id of
/// this feed", whatever failed.
#[derive(Debug, PartialEq, Eq)]
pub struct BadEventId;

/// The position an event id of `tenant`'s feed stands for. `key` gives the tenant's data key
/// of a version (none: unknown version).
pub fn position_of<'k>(
    event_id: &str,
    tenant: &TenantId,
    key: impl FnOnce(u32) -> Option<&'k DataKey>,
) -> Result<Position, BadEventId> {
    if event_id.is_empty() || event_id.len() > MAX_EVENT_ID_LEN {
        return Err(BadEventId);
    }
    let sealed = URL_SAFE_NO_PAD.decode(event_id).map_err(|_| BadEventId)?;
    let header = crypto::parse_header(&sealed).map_err(|_| BadEventId)?;
    let key = key(header.key_version).ok_or(BadEventId)?;
    let plain = crypto::open(key, tenant, CONTEXT, &sealed).map_err(|_| BadEventId)?;
    let plain: &[u8; 16] = plain.as_slice().try_into().map_err(|_| BadEventId)?;
    Ok(Position {
        xid: u64::from_be_bytes(plain[..8].try_into().expect("8 bytes")),
        id: i64::from_be_bytes(plain[8..].try_into().expect("8 bytes")),
    })
}

#[cfg(test)]
mod tests;

//! Sealstore's pure logic, kept free of pgrx and tokio so it is unit tested in seconds.
//!
//! The extension crate (`pg_ext`) only converts datums, reads settings and maps the errors
//! defined here to SQLSTATEs; the gateway (`frontend`) may link it for shared parsing.

pub mod auth;
pub mod crypto;
pub mod distance;
pub mod error;
pub mod events;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod graph;
pub mod ids;
pub mod master_key;
pub mod names;
pub mod readahead;
pub mod replay;
#[cfg(test)]
mod test_rng;
pub mod topk;
pub mod vector;

pub use master_key::{MasterKey, MasterKeyError, MasterKeySource};

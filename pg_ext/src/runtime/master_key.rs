//! The master key of this server process.
//!
//! Loaded once, in the postmaster, while `shared_preload_libraries` is processed, so every
//! backend and parallel worker inherits it through fork and no backend re-reads the file or
//! re-runs a KMS command. A failure does not stop the server: it is logged (without key
//! material) and every function that needs the key raises a clean, documented error, which
//! lets an operator connect, see what is wrong and `/readyz` report it.

use std::sync::OnceLock;

use pgrx::pg_sys;
use pgrx::prelude::*;
use sealstore_core::{MasterKey, MasterKeyError, MasterKeySource};

use crate::runtime::errors::{self, Error, Result};
use crate::runtime::gucs;

/// Why this process has no master key.
#[derive(Debug)]
pub enum Unavailable {
    /// The library was loaded by a backend, not at server start.
    NotPreloaded,
    Key(MasterKeyError),
}

impl From<&Unavailable> for Error {
    fn from(why: &Unavailable) -> Self {
        match why {
            Unavailable::NotPreloaded => errors::not_preloaded(),
            Unavailable::Key(e) => e.clone().into(),
        }
    }
}

static STATE: OnceLock<std::result::Result<MasterKey, Unavailable>> = OnceLock::new();
/// The previous master key during a rotation: None when not configured.
static PREVIOUS: OnceLock<Option<std::result::Result<MasterKey, Unavailable>>> = OnceLock::new();

pub fn init() {
    // SAFETY: a plain read of a PostgreSQL global, in the main thread during library load.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    let state = if preloading {
        load()
    } else {
        Err(Unavailable::NotPreloaded)
    };
    match &state {
        Ok(key) => log!(
            "sealstore: master key loaded (fingerprint {})",
            key.fingerprint()
        ),
        Err(Unavailable::Key(e)) => {
            warning!("sealstore: no master key, encryption is unavailable: {e}")
        }
        Err(Unavailable::NotPreloaded) => {}
    }
    let _ = STATE.set(state);
    let previous = if preloading { load_previous() } else { None };
    match &previous {
        Some(Ok(key)) => log!(
            "sealstore: previous master key loaded (fingerprint {})",
            key.fingerprint()
        ),
        Some(Err(Unavailable::Key(e))) => {
            warning!("sealstore: previous master key not loaded: {e}")
        }
        _ => {}
    }
    let _ = PREVIOUS.set(previous);
}

fn load_previous() -> Option<std::result::Result<MasterKey, Unavailable>> {
    let file = gucs::string_value(&gucs::PREVIOUS_MASTER_KEY_FILE);
    let command = gucs::string_value(&gucs::PREVIOUS_MASTER_KEY_COMMAND);
    match MasterKeySource::from_settings(file.as_deref(), command.as_deref()) {
        Err(MasterKeyError::NotConfigured) => None,
        other => Some(
            other
                .and_then(|source| source.load())
                .map_err(Unavailable::Key),
        ),
    }
}

/// Fingerprints of the master keys this server holds: the current one, and the previous one
/// during a rotation.
pub fn loaded_fingerprints() -> Result<Vec<String>> {
    let mut out = vec![get()?.fingerprint()];
    if let Some(Some(Ok(previous))) = PREVIOUS.get() {
        out.push(previous.fingerprint());
    }
    Ok(out)
}

/// The master key with this fingerprint: the current one, or the previous one during a
/// rotation. Any other fingerprint is a key this server does not hold: 55000, never an attempt
/// to unwrap with the wrong key.
pub fn for_fingerprint(fingerprint: &str) -> Result<&'static MasterKey> {
    let current = get()?;
    if current.fingerprint() == fingerprint {
        return Ok(current);
    }
    match PREVIOUS.get() {
        Some(Some(Ok(previous))) if previous.fingerprint() == fingerprint => Ok(previous),
        Some(Some(Err(why))) => Err(why.into()),
        _ => Err(errors::foreign_master_key(
            fingerprint,
            &loaded_fingerprints()?,
        )),
    }
}

fn load() -> std::result::Result<MasterKey, Unavailable> {
    let file = gucs::string_value(&gucs::MASTER_KEY_FILE);
    let command = gucs::string_value(&gucs::MASTER_KEY_COMMAND);
    MasterKeySource::from_settings(file.as_deref(), command.as_deref())
        .and_then(|source| source.load())
        .map_err(Unavailable::Key)
}

/// The master key, or the documented error for why it is missing.
pub fn get() -> Result<&'static MasterKey> {
    match STATE.get() {
        Some(Ok(key)) => Ok(key),
        Some(Err(why)) => Err(why.into()),
        None => Err(errors::not_preloaded()),
    }
}

//! Column encryption for the current tenant: encrypt, decrypt, reencrypt, blind_index.
//! Envelope and associated data are defined in `sealstore_core::crypto`.

use pgrx::prelude::*;
use sealstore_core::crypto::{self, CryptoError};

use crate::context;
use crate::errors;
use crate::keycache;

fn fail(e: CryptoError) -> ! {
    errors::raise(errors::crypto(&e))
}

pub fn seal_for_current(plaintext: &[u8], context: &str) -> Vec<u8> {
    let tenant = context::tenant();
    let keys = keycache::tenant_keys(&tenant);
    crypto::seal(keys.active_key(), &tenant, context.as_bytes(), plaintext)
        .unwrap_or_else(|e| fail(e))
}

pub fn open_for_current(ciphertext: &[u8], context: &str) -> Vec<u8> {
    let tenant = context::tenant();
    let header = crypto::parse_header(ciphertext).unwrap_or_else(|e| fail(e));
    let keys = keycache::tenant_keys(&tenant);
    let mut plain = crypto::open(
        keys.key(header.key_version),
        &tenant,
        context.as_bytes(),
        ciphertext,
    )
    .unwrap_or_else(|e| fail(e));
    std::mem::take(&mut *plain)
}

/// Encrypts a value for the current tenant, bound to `context` (for example table, column
/// and row id): decrypting needs the same tenant and the same context.
#[pg_extern(volatile, parallel_restricted, strict)]
fn encrypt(plaintext: &[u8], context: default!(&str, "''")) -> Vec<u8> {
    seal_for_current(plaintext, context)
}

#[pg_extern(stable, parallel_restricted, strict)]
fn decrypt(ciphertext: &[u8], context: default!(&str, "''")) -> Vec<u8> {
    open_for_current(ciphertext, context)
}

#[pg_extern(volatile, parallel_restricted, strict)]
fn encrypt_text(plaintext: &str, context: default!(&str, "''")) -> Vec<u8> {
    seal_for_current(plaintext.as_bytes(), context)
}

#[pg_extern(stable, parallel_restricted, strict)]
fn decrypt_text(ciphertext: &[u8], context: default!(&str, "''")) -> String {
    String::from_utf8(open_for_current(ciphertext, context)).unwrap_or_else(|_| {
        errors::raise(errors::plain(
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            "decrypted value is not valid UTF-8 text; use sealstore.decrypt()",
        ))
    })
}

/// Decrypts with whatever key version the value names and encrypts again with the tenant's
/// active version (values already on the active version are re-encrypted too, with a new nonce).
#[pg_extern(volatile, parallel_restricted, strict)]
fn reencrypt(ciphertext: &[u8], context: default!(&str, "''")) -> Vec<u8> {
    let tenant = context::tenant();
    let header = crypto::parse_header(ciphertext).unwrap_or_else(|e| fail(e));
    let keys = keycache::tenant_keys(&tenant);
    let plain = crypto::open(
        keys.key(header.key_version),
        &tenant,
        context.as_bytes(),
        ciphertext,
    )
    .unwrap_or_else(|e| fail(e));
    crypto::seal(keys.active_key(), &tenant, context.as_bytes(), &plain).unwrap_or_else(|e| fail(e))
}

/// The current tenant's active key version: the one new writes and reencrypt() use.
#[pg_extern(stable, parallel_restricted)]
fn active_key_version() -> i32 {
    let tenant = context::tenant();
    i32::try_from(keycache::tenant_keys(&tenant).active_key().version()).unwrap_or(i32::MAX)
}

/// The key version a ciphertext was made with (reads the header only; no key needed).
#[pg_extern(immutable, parallel_safe, strict)]
fn envelope_key_version(ciphertext: &[u8]) -> i32 {
    let header = crypto::parse_header(ciphertext).unwrap_or_else(|e| fail(e));
    i32::try_from(header.key_version).unwrap_or(i32::MAX)
}

/// HMAC-SHA256 of `value` under the current tenant's blind-index key, separated by `context`:
/// store it beside an encrypted column and look rows up by equality without decrypting.
#[pg_extern(stable, parallel_restricted, strict)]
fn blind_index(value: &str, context: default!(&str, "''")) -> Vec<u8> {
    let tenant = context::tenant();
    keycache::tenant_keys(&tenant)
        .index_key()
        .blind_index(context.as_bytes(), value.as_bytes())
        .to_vec()
}

//! Column encryption for the current tenant: encrypt, decrypt, reencrypt, blind_index.
//! Envelope and associated data are defined in `sealstore_core::crypto`.

use std::rc::Rc;

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;
use sealstore_core::crypto::{self, CryptoError, TenantId};

use crate::runtime::context;
use crate::runtime::errors::{edge, Error, Kind, Result};
use crate::runtime::keycache::{self, TenantKeys};

/// Scopes: sealing is writing (`write`), opening is reading (`read`), re-encrypting both, and a
/// blind index serves writers (to store it) and readers (to look rows up) alike.
const WRITE: &[&str] = &["write"];
const READ: &[&str] = &["read"];
const READ_OR_WRITE: &[&str] = &["read", "write"];

pub fn seal_for_current(plaintext: &[u8], context: &str) -> Result<Vec<u8>> {
    let tenant = context::tenant_with(WRITE)?;
    let keys = keycache::tenant_keys(&tenant)?;
    Ok(crypto::seal(
        keys.active_key()?,
        &tenant,
        context.as_bytes(),
        plaintext,
    )?)
}

/// The current tenant, its keys, and the key version `ciphertext` names (its header checked):
/// what every decrypting function starts with.
fn opening_keys(ciphertext: &[u8]) -> Result<(TenantId, Rc<TenantKeys>, u32)> {
    let tenant = context::tenant_with(READ)?;
    let header = crypto::parse_header(ciphertext)?;
    Ok((tenant, keycache::tenant_keys(&tenant)?, header.key_version))
}

pub fn open_for_current(ciphertext: &[u8], context: &str) -> Result<Vec<u8>> {
    let (tenant, keys, version) = opening_keys(ciphertext)?;
    let mut plain = crypto::open(keys.key(version)?, &tenant, context.as_bytes(), ciphertext)?;
    Ok(std::mem::take(&mut *plain))
}

/// Decrypted bytes as text, or 22021: they are not UTF-8.
pub fn utf8(bytes: Vec<u8>, what: &'static str) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| Error::new(Kind::NotText, what))
}

/// A bytea built in palloc'd memory: `encrypt` seals and `decrypt` opens straight into it, so
/// the result is written once (a `Vec<u8>` return would be copied again into a bytea).
pub struct Bytea(pg_sys::Datum);

// SAFETY: maps to the built-in bytea, which the datum is.
unsafe impl SqlTranslatable for Bytea {
    const TYPE_IDENT: &'static str = "sealstore::encryption::Bytea";
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("bytea"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("bytea")));
}

// SAFETY: returns the bytea datum built by `filled_bytea`.
unsafe impl BoxRet for Bytea {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: a valid bytea datum in the function's memory context.
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

/// Seals `plaintext` for the current tenant into a new bytea.
fn sealed_bytea(plaintext: &[u8], context: &str) -> Result<Bytea> {
    let tenant = context::tenant_with(WRITE)?;
    let keys = keycache::tenant_keys(&tenant)?;
    let key = keys.active_key()?;
    filled_bytea(
        crypto::sealed_len(key.algorithm(), plaintext.len()),
        |body| crypto::seal_into(key, &tenant, context.as_bytes(), plaintext, body),
    )
}

/// A new bytea of `len` bytes in the current memory context, its body filled completely by
/// `fill`; if `fill` fails, the bytea is freed and the error returned.
fn filled_bytea(
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> std::result::Result<(), CryptoError>,
) -> Result<Bytea> {
    let total = i32::try_from(len + pg_sys::VARHDRSZ)
        .ok()
        .filter(|t| *t <= 0x3fff_ffff)
        .ok_or(CryptoError::TooLarge)?;
    // SAFETY: a fresh palloc of the whole bytea (at most MaxAllocSize, checked above), its
    // header set, its body handed to `fill` as a slice of exactly `len` bytes; on failure it is
    // freed before anything else sees it.
    unsafe {
        let ptr = pg_sys::palloc(total as usize).cast::<u8>();
        pgrx::set_varsize_4b(ptr.cast(), total);
        let body = std::slice::from_raw_parts_mut(ptr.add(pg_sys::VARHDRSZ), len);
        if let Err(e) = fill(body) {
            pg_sys::pfree(ptr.cast());
            return Err(e.into());
        }
        Ok(Bytea(pg_sys::Datum::from(ptr)))
    }
}

/// Encrypts a value for the current tenant, bound to `context` (for example table, column
/// and row id): decrypting needs the same tenant and the same context.
#[pg_extern(volatile, parallel_restricted, strict)]
fn encrypt(plaintext: &[u8], context: default!(&str, "''")) -> Bytea {
    edge(|| sealed_bytea(plaintext, context))
}

#[pg_extern(stable, parallel_restricted, strict)]
fn decrypt(ciphertext: &[u8], context: default!(&str, "''")) -> Bytea {
    edge(|| {
        let (tenant, keys, version) = opening_keys(ciphertext)?;
        let key = keys.key(version)?;
        filled_bytea(crypto::opened_len(ciphertext)?, |body| {
            crypto::open_into(key, &tenant, context.as_bytes(), ciphertext, body)
        })
    })
}

#[pg_extern(volatile, parallel_restricted, strict)]
fn encrypt_text(plaintext: &str, context: default!(&str, "''")) -> Bytea {
    edge(|| sealed_bytea(plaintext.as_bytes(), context))
}

#[pg_extern(stable, parallel_restricted, strict)]
fn decrypt_text(ciphertext: &[u8], context: default!(&str, "''")) -> String {
    edge(|| {
        utf8(
            open_for_current(ciphertext, context)?,
            "decrypted value is not valid UTF-8 text; use sealstore.decrypt()",
        )
    })
}

/// Opens `ciphertext` under whatever key version it names and seals the plaintext again under
/// the active version, with a new nonce, bound to the same tenant and context.
pub fn reencrypt_with(
    keys: &TenantKeys,
    tenant: &TenantId,
    ciphertext: &[u8],
    context: &[u8],
) -> Result<Vec<u8>> {
    let header = crypto::parse_header(ciphertext)?;
    let plain = crypto::open(keys.key(header.key_version)?, tenant, context, ciphertext)?;
    Ok(crypto::seal(keys.active_key()?, tenant, context, &plain)?)
}

/// Decrypts with whatever key version the value names and encrypts again with the tenant's
/// active version (values already on the active version are re-encrypted too, with a new nonce).
#[pg_extern(volatile, parallel_restricted, strict)]
fn reencrypt(ciphertext: &[u8], context: default!(&str, "''")) -> Vec<u8> {
    edge(|| {
        context::tenant_with(WRITE)?;
        let tenant = context::tenant_with(READ)?;
        reencrypt_with(
            &*keycache::tenant_keys(&tenant)?,
            &tenant,
            ciphertext,
            context.as_bytes(),
        )
    })
}

/// The current tenant's active key version: the one new writes and reencrypt() use.
#[pg_extern(stable, parallel_restricted)]
fn active_key_version() -> i32 {
    edge(|| {
        let tenant = context::tenant()?;
        let version = keycache::tenant_keys(&tenant)?.active_key()?.version();
        Ok(i32::try_from(version).unwrap_or(i32::MAX))
    })
}

/// The key version a ciphertext was made with (reads the header only; no key needed).
#[pg_extern(immutable, parallel_safe, strict)]
fn envelope_key_version(ciphertext: &[u8]) -> i32 {
    edge(|| {
        let header = crypto::parse_header(ciphertext)?;
        Ok(i32::try_from(header.key_version).unwrap_or(i32::MAX))
    })
}

/// HMAC-SHA256 of `value` under the current tenant's blind-index key, separated by `context`:
/// store it beside an encrypted column and look rows up by equality without decrypting.
#[pg_extern(stable, parallel_restricted, strict)]
fn blind_index(value: &str, context: default!(&str, "''")) -> Vec<u8> {
    edge(|| {
        let tenant = context::tenant_with(READ_OR_WRITE)?;
        Ok(keycache::tenant_keys(&tenant)?
            .index_key()?
            .blind_index(context.as_bytes(), value.as_bytes())
            .to_vec())
    })
}

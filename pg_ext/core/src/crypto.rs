//! Data keys, key wrapping, the ciphertext envelope and blind indexes.
//!
//! Envelope (bytea), all integers big-endian:
//! ```text
//! format version (1) | algorithm id (1) | key version (4) | nonce (24 or 12) | ciphertext + tag (16)
//! ```
//! Associated data = the 6 header bytes | tenant id (16) | the caller's context string, so a
//! ciphertext moved to another tenant, key version or context (row, column) fails to open.
//!
//! Nonces are random, from the operating system (`getrandom`) on every call. A user-space
//! generator would be cheaper, but PostgreSQL forks every backend from the postmaster: a
//! generator state copied into each backend would repeat nonces across backends.
//!
//! AES-256-GCM runs on one of two builds of BoringSSL's line, chosen by the CPU ([`AesEngine`]):
//! AWS-LC (`aws-lc-rs`) where the CPU has AVX-512 with VAES and VPCLMULQDQ, for its 512-bit
//! AES-GCM, which also decrypts out of place (from the ciphertext where it lies, with no copy
//! first); `ring` elsewhere, for its VAES-AVX2 AES-GCM (AWS-LC has none: without AVX-512 it
//! falls back to AES-NI with 128-bit registers, slower than ring). Both compute the keystream
//! and GHASH in one pass; `aes-gcm` 0.11 does two and is about three times slower here.
//! XChaCha20-Poly1305 runs on `chacha20poly1305` (neither has an extended-nonce ChaCha). The
//! tests check both AES-GCM engines against RustCrypto's `aes-gcm` and against Wycheproof.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::MasterKey;

mod aes;

use aes::Aes;
pub use aes::AesEngine;

pub const FORMAT_V1: u8 = 1;
pub const HEADER_LEN: usize = 6;
pub const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;
pub use crate::ids::TenantId;

const WRAP_INFO: &[u8] = b"sealstore/v1/dek-wrapping-key";
const WRAP_AD_LABEL: &[u8] = b"sealstore/v1/dek";
const BLIND_INDEX_INFO: &[u8] = b"sealstore/v1/blind-index";
const API_KEY_INFO: &[u8] = b"sealstore/v1/api-key";
const SECRET_AD_LABEL: &[u8] = b"sealstore/v1/config-secret";

/// The AEAD a tenant's data keys use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    XChaCha20Poly1305,
    Aes256Gcm,
}

impl Algorithm {
    pub fn from_name(name: &str) -> Result<Self, CryptoError> {
        match name {
            "xchacha20-poly1305" => Ok(Self::XChaCha20Poly1305),
            "aes-256-gcm" => Ok(Self::Aes256Gcm),
            _ => Err(CryptoError::UnknownAlgorithmName),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::XChaCha20Poly1305 => "xchacha20-poly1305",
            Self::Aes256Gcm => "aes-256-gcm",
        }
    }

    pub fn id(self) -> u8 {
        match self {
            Self::XChaCha20Poly1305 => 1,
            Self::Aes256Gcm => 2,
        }
    }

    pub fn from_id(id: u8) -> Result<Self, CryptoError> {
        match id {
            1 => Ok(Self::XChaCha20Poly1305),
            2 => Ok(Self::Aes256Gcm),
            other => Err(CryptoError::UnknownAlgorithm(other)),
        }
    }

    pub fn nonce_len(self) -> usize {
        match self {
            Self::XChaCha20Poly1305 => 24,
            Self::Aes256Gcm => 12,
        }
    }
}

/// Why a cryptographic operation failed. Messages never contain key or plaintext bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("not a Sealstore ciphertext (too short)")]
    Truncated,
    #[error("unsupported ciphertext format version {0}")]
    UnsupportedFormat(u8),
    #[error("unknown algorithm id {0} in ciphertext")]
    UnknownAlgorithm(u8),
    #[error("unknown algorithm name; use xchacha20-poly1305 or aes-256-gcm")]
    UnknownAlgorithmName,
    #[error("ciphertext failed authentication: it was modified, or belongs to another tenant, key version or context")]
    Authentication,
    #[error("the ciphertext's algorithm does not match the key")]
    AlgorithmMismatch,
    #[error("a wrapped data key failed to unwrap: wrong master key, or the key row was modified")]
    Unwrap,
    #[error("value too large to encrypt")]
    TooLarge,
    #[error("the operating system's random generator failed")]
    Random,
}

enum Cipher {
    XChaCha(Box<XChaCha20Poly1305>),
    Aes(Aes),
}

/// One version of a tenant's data key, ready to use: the AEAD instance (zeroized on drop by the
/// cipher crates) and the tenant's blind-index key derived from it.
pub struct DataKey {
    algorithm: Algorithm,
    version: u32,
    cipher: Cipher,
    blind_key: Zeroizing<[u8; KEY_LEN]>,
    api_key_key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DataKey({}, v{}, <redacted>)",
            self.algorithm.name(),
            self.version
        )
    }
}

pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, CryptoError> {
    let mut out = Zeroizing::new([0u8; N]);
    getrandom::fill(out.as_mut_slice()).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

impl DataKey {
    pub fn from_bytes(algorithm: Algorithm, version: u32, key: &[u8; KEY_LEN]) -> Self {
        Self::from_bytes_on(AesEngine::for_this_cpu(), algorithm, version, key)
    }

    /// As [`DataKey::from_bytes`], with AES-256-GCM on the given engine rather than this CPU's
    /// faster one: the tests run both engines on any CPU.
    #[doc(hidden)]
    pub fn from_bytes_on(
        engine: AesEngine,
        algorithm: Algorithm,
        version: u32,
        key: &[u8; KEY_LEN],
    ) -> Self {
        let cipher = match algorithm {
            Algorithm::XChaCha20Poly1305 => {
                Cipher::XChaCha(Box::new(XChaCha20Poly1305::new(key.into())))
            }
            Algorithm::Aes256Gcm => Cipher::Aes(Aes::new(engine, key)),
        };
        let mut blind_key = Zeroizing::new([0u8; KEY_LEN]);
        Hkdf::<Sha256>::new(None, key)
            .expand(BLIND_INDEX_INFO, blind_key.as_mut_slice())
            .expect("32 bytes of HKDF output");
        let mut api_key_key = Zeroizing::new([0u8; KEY_LEN]);
        Hkdf::<Sha256>::new(None, key)
            .expand(API_KEY_INFO, api_key_key.as_mut_slice())
            .expect("32 bytes of HKDF output");
        Self {
            algorithm,
            version,
            cipher,
            blind_key,
            api_key_key,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    fn seal_in_place(
        &self,
        nonce: &[u8],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        match &self.cipher {
            Cipher::XChaCha(c) => seal_with(c.as_ref(), nonce, ad, buf),
            Cipher::Aes(c) => c.seal(nonce, ad, buf),
        }
    }

    /// Decrypts `ciphertext` into `out`, which must be as long (else `Truncated`, whatever the
    /// engine). On error `out` may hold anything; the callers wipe it.
    fn open_into(
        &self,
        nonce: &[u8],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        if out.len() != ciphertext.len() {
            return Err(CryptoError::Truncated);
        }
        match &self.cipher {
            Cipher::XChaCha(c) => open_with(c.as_ref(), nonce, ad, ciphertext, tag, out),
            Cipher::Aes(c) => c.open(nonce, ad, ciphertext, tag, out),
        }
    }

    /// Raw AEAD for known-answer tests (Wycheproof): `ct || tag` of `pt`.
    #[doc(hidden)]
    pub fn raw_seal(&self, nonce: &[u8], ad: &[u8], pt: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut buf = pt.to_vec();
        let tag = self.seal_in_place(nonce, ad, &mut buf)?;
        buf.extend_from_slice(&tag);
        Ok(buf)
    }

    /// Raw AEAD for known-answer tests (Wycheproof): opens `ct || tag`.
    #[doc(hidden)]
    pub fn raw_open(
        &self,
        nonce: &[u8],
        ad: &[u8],
        ct_and_tag: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let split = ct_and_tag
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::Truncated)?;
        let mut buf = vec![0u8; split];
        // As every caller of `open_into`: nothing unauthenticated is left behind on failure.
        self.open_into(
            nonce,
            ad,
            &ct_and_tag[..split],
            &ct_and_tag[split..],
            &mut buf,
        )
        .inspect_err(|_| buf.zeroize())?;
        Ok(buf)
    }

    /// HMAC-SHA256 of `value` under the tenant's blind-index key, domain-separated by
    /// `context`: equal values in the same context give equal indexes, nothing else is revealed.
    pub fn blind_index(&self, context: &[u8], value: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.blind_key.as_slice())
            .expect("HMAC takes any key length");
        mac.update(&(context.len() as u64).to_be_bytes());
        mac.update(context);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    fn api_key_mac(&self, id: &[u8; 16], secret: &[u8; 32]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.api_key_key.as_slice())
            .expect("HMAC takes any key length");
        mac.update(id);
        mac.update(secret);
        mac
    }

    /// The stored form of an API key: HMAC-SHA256 of its id and secret under a key derived
    /// from this data key (never the blind-index key, so no SQL call can compute it).
    pub fn api_key_tag(&self, id: &[u8; 16], secret: &[u8; 32]) -> [u8; 32] {
        self.api_key_mac(id, secret).finalize().into_bytes().into()
    }

    /// Constant-time check of an API key against its stored tag.
    pub fn verify_api_key_tag(&self, id: &[u8; 16], secret: &[u8; 32], stored: &[u8]) -> bool {
        use hmac::Mac;
        self.api_key_mac(id, secret).verify_slice(stored).is_ok()
    }
}

fn seal_with<A: AeadInOut>(
    cipher: &A,
    nonce: &[u8],
    ad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], CryptoError> {
    let nonce = nonce.try_into().map_err(|_| CryptoError::Truncated)?;
    let tag = cipher
        .encrypt_inout_detached(nonce, ad, buf.into())
        .map_err(|_| CryptoError::TooLarge)?;
    tag.as_slice().try_into().map_err(|_| CryptoError::TooLarge)
}

fn open_with<A: AeadInOut>(
    cipher: &A,
    nonce: &[u8],
    ad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let nonce = nonce.try_into().map_err(|_| CryptoError::Truncated)?;
    let tag = tag.try_into().map_err(|_| CryptoError::Truncated)?;
    let buf = InOutBuf::new(ciphertext, out).map_err(|_| CryptoError::Truncated)?;
    cipher
        .decrypt_inout_detached(nonce, ad, buf, tag)
        .map_err(|_| CryptoError::Authentication)
}

/// The parsed fixed part of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub algorithm: Algorithm,
    pub key_version: u32,
}

/// Reads and checks an envelope's header, and that it is long enough to hold nonce and tag.
pub fn parse_header(envelope: &[u8]) -> Result<Header, CryptoError> {
    if envelope.len() < HEADER_LEN {
        return Err(CryptoError::Truncated);
    }
    if envelope[0] != FORMAT_V1 {
        return Err(CryptoError::UnsupportedFormat(envelope[0]));
    }
    let algorithm = Algorithm::from_id(envelope[1])?;
    let key_version = u32::from_be_bytes(envelope[2..6].try_into().expect("4 bytes"));
    if envelope.len() < HEADER_LEN + algorithm.nonce_len() + TAG_LEN {
        return Err(CryptoError::Truncated);
    }
    Ok(Header {
        algorithm,
        key_version,
    })
}

/// Calls `f` with the associated data of an envelope: its header, the tenant and the context,
/// concatenated. Built on the stack when short, as it is for every envelope a search opens (one
/// per row); on the heap otherwise.
fn with_associated_data<R>(
    header: &[u8],
    tenant: &TenantId,
    context: &[u8],
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    const INLINE: usize = 128;
    let parts = [header, tenant.as_bytes().as_slice(), context];
    let len = parts.iter().map(|p| p.len()).sum();
    let mut inline = [0u8; INLINE];
    let mut heap = Vec::new();
    let ad = if len <= INLINE {
        &mut inline[..len]
    } else {
        heap.resize(len, 0);
        heap.as_mut_slice()
    };
    let mut at = 0;
    for part in parts {
        ad[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    f(ad)
}

/// The length of the envelope [`seal`] makes of `plaintext_len` bytes under `algorithm`.
pub fn sealed_len(algorithm: Algorithm, plaintext_len: usize) -> usize {
    HEADER_LEN + algorithm.nonce_len() + plaintext_len + TAG_LEN
}

/// Encrypts `plaintext` for `tenant` and `context` under `key`, in one allocation.
pub fn seal(
    key: &DataKey,
    tenant: &TenantId,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut out = vec![0u8; sealed_len(key.algorithm, plaintext.len())];
    seal_into(key, tenant, context, plaintext, &mut out)?;
    Ok(out)
}

/// As [`seal`], into `out`, a buffer the caller owns (the extension builds a bytea in place),
/// which must be exactly [`sealed_len`] long. On error `out` holds no plaintext.
pub fn seal_into(
    key: &DataKey,
    tenant: &TenantId,
    context: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    assert_eq!(
        out.len(),
        sealed_len(key.algorithm, plaintext.len()),
        "seal_into needs a buffer of exactly sealed_len bytes"
    );
    let body = HEADER_LEN + key.algorithm.nonce_len();
    out[0] = FORMAT_V1;
    out[1] = key.algorithm.id();
    out[2..HEADER_LEN].copy_from_slice(&key.version.to_be_bytes());
    getrandom::fill(&mut out[HEADER_LEN..body]).map_err(|_| CryptoError::Random)?;
    let (head, rest) = out.split_at_mut(body);
    let (msg, tag_out) = rest.split_at_mut(plaintext.len());
    msg.copy_from_slice(plaintext);
    let sealed = with_associated_data(&head[..HEADER_LEN], tenant, context, |ad| {
        key.seal_in_place(&head[HEADER_LEN..], ad, msg)
    });
    match sealed {
        Ok(tag) => {
            tag_out.copy_from_slice(&tag);
            Ok(())
        }
        Err(e) => {
            msg.zeroize();
            Err(e)
        }
    }
}

/// Decrypts an envelope made by [`seal`] with the same key, tenant and context. The caller
/// picks `key` by the header's key version (see [`parse_header`]).
pub fn open(
    key: &DataKey,
    tenant: &TenantId,
    context: &[u8],
    envelope: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let parts = Parts::of(key, envelope)?;
    let mut plaintext = Zeroizing::new(vec![0u8; parts.ciphertext.len()]);
    parts.open_into(key, tenant, context, &mut plaintext)?;
    Ok(plaintext)
}

/// The length of the plaintext in `envelope`, after checking its header and length (no key
/// needed, nothing authenticated yet).
pub fn opened_len(envelope: &[u8]) -> Result<usize, CryptoError> {
    let header = parse_header(envelope)?;
    Ok(envelope.len() - HEADER_LEN - header.algorithm.nonce_len() - TAG_LEN)
}

/// As [`open`], into `out`, a buffer the caller owns (the extension builds a bytea in place),
/// which must be exactly [`opened_len`] long. On error `out` is all zeros.
pub fn open_into(
    key: &DataKey,
    tenant: &TenantId,
    context: &[u8],
    envelope: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let parts = Parts::of(key, envelope)?;
    assert_eq!(
        out.len(),
        parts.ciphertext.len(),
        "open_into needs a buffer of exactly opened_len bytes"
    );
    parts.open_into(key, tenant, context, out)
}

/// An envelope checked against the key that is to open it, split into its parts.
struct Parts<'a> {
    header: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

impl<'a> Parts<'a> {
    fn of(key: &DataKey, envelope: &'a [u8]) -> Result<Self, CryptoError> {
        let header = parse_header(envelope)?;
        if header.algorithm != key.algorithm {
            return Err(CryptoError::AlgorithmMismatch);
        }
        if header.key_version != key.version {
            return Err(CryptoError::Authentication);
        }
        let body = HEADER_LEN + header.algorithm.nonce_len();
        let tag_at = envelope.len() - TAG_LEN;
        Ok(Self {
            header: &envelope[..HEADER_LEN],
            nonce: &envelope[HEADER_LEN..body],
            ciphertext: &envelope[body..tag_at],
            tag: &envelope[tag_at..],
        })
    }

    /// Decrypts the ciphertext into `out` (exactly as long); on error `out` is all zeros.
    fn open_into(
        &self,
        key: &DataKey,
        tenant: &TenantId,
        context: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        with_associated_data(self.header, tenant, context, |ad| {
            key.open_into(self.nonce, ad, self.ciphertext, self.tag, out)
        })
        .inspect_err(|_| out.zeroize())
    }
}

/// The buffer a decrypted embedding is opened into by [`open_f32_into`]: reused from row to
/// row of a search, wiped whenever its length changes and when it is dropped.
///
/// ring decrypts in place, so on the ring engine each row's ciphertext is first copied here, by
/// glibc's `memcpy` (`rep movsb` for a 3 KB row); AWS-LC reads it where it lies. On these
/// machines' AMD CPUs that copy takes about 1.2 µs instead of 50–80 ns when the destination
/// lies 1 to 31 bytes past the source modulo 4 KB
/// (measured byte by byte for sources at several offsets; every other distance is fast). Rows
/// of the same shape sit at the same offsets in their pages, so a buffer that happened to fall
/// in that window for one of them slowed half of a search's rows by 20 times. The buffer
/// therefore has room for two places a cache line apart, and each envelope is opened into the
/// one outside the window for its own ciphertext's address (AWS-LC's decryption, measured at
/// every such distance, has no slow one, and is indifferent to the choice). The first place
/// starts on a 64-byte boundary, so the distance kernels read whole cache lines.
#[derive(Default)]
pub struct OpenedF32 {
    /// Room for the values and two cache lines more.
    values: Vec<f32>,
    /// The first 64-byte boundary in `values`: the first place; the second is a line later.
    aligned: usize,
    /// Where the last opened values start.
    start: usize,
}

/// `f32`s in a cache line.
const LINE_F32S: usize = 64 / std::mem::size_of::<f32>();

/// The distances from a copy's source to its destination, modulo 4 KB, at which `rep movsb`
/// is slow (see [`OpenedF32`]).
const SLOW_COPY_DISTANCES: std::ops::Range<usize> = 1..32;

impl OpenedF32 {
    /// The embedding last opened into the buffer (empty before the first).
    pub fn as_slice(&self) -> &[f32] {
        &self.values[self.start..self.start + self.len()]
    }

    /// How many values the buffer holds: all of its room but the two spare lines.
    fn len(&self) -> usize {
        self.values.len().saturating_sub(2 * LINE_F32S)
    }

    /// Room for `len` values into which `source` (their ciphertext) is to be copied. When the
    /// length is the last one (row after row of a search), old values stay until overwritten,
    /// with no zero fill first.
    fn take(&mut self, len: usize, source: &[u8]) -> &mut [f32] {
        if self.values.len() != len + 2 * LINE_F32S {
            // Zeroizing also clears the vector, so `resize` below never moves old values.
            self.values.zeroize();
            self.values.resize(len + 2 * LINE_F32S, 0.0);
            // An f32 allocation is 4-byte aligned, so some f32 in the first line is at a
            // boundary.
            let past = self.values.as_ptr() as usize % 64;
            self.aligned = (64 - past) % 64 / std::mem::size_of::<f32>();
        }
        let first = self.values[self.aligned..].as_ptr() as usize;
        let distance = first.wrapping_sub(source.as_ptr() as usize) % 4096;
        self.start = if SLOW_COPY_DISTANCES.contains(&distance) {
            self.aligned + LINE_F32S
        } else {
            self.aligned
        };
        &mut self.values[self.start..self.start + len]
    }
}

impl Drop for OpenedF32 {
    fn drop(&mut self) {
        self.values.zeroize();
    }
}

/// Decrypts an envelope of `f32` values (an encrypted embedding: the elements' little-endian
/// bytes) into `out`, reusing its allocation: the hot path of a search over encrypted
/// embeddings, which opens one envelope per row. On error `out` holds only zeros.
pub fn open_f32_into(
    key: &DataKey,
    tenant: &TenantId,
    context: &[u8],
    envelope: &[u8],
    out: &mut OpenedF32,
) -> Result<(), CryptoError> {
    let parts = Parts::of(key, envelope)?;
    if parts.ciphertext.len() % 4 != 0 {
        return Err(CryptoError::Truncated);
    }
    let values = out.take(parts.ciphertext.len() / 4, parts.ciphertext);
    if let Err(e) = parts.open_into(key, tenant, context, bytemuck::cast_slice_mut(values)) {
        // Also the line before or after, which an earlier row in the other place may have left.
        out.values.as_mut_slice().zeroize();
        return Err(e);
    }
    for x in values.iter_mut() {
        *x = f32::from_bits(u32::from_le(x.to_bits()));
    }
    Ok(())
}

/// The plaintext of an encrypted embedding: its elements' little-endian bytes.
pub fn f32_plaintext(values: &[f32]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(values.iter().flat_map(|x| x.to_le_bytes()).collect())
}

fn wrapping_cipher(master: &MasterKey) -> XChaCha20Poly1305 {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    master.derive(WRAP_INFO, k.as_mut_slice());
    XChaCha20Poly1305::new((&*k).into())
}

fn wrap_ad(tenant: &TenantId, version: u32, algorithm: Algorithm) -> Vec<u8> {
    let mut ad = WRAP_AD_LABEL.to_vec();
    ad.extend_from_slice(tenant.as_bytes());
    ad.extend_from_slice(&version.to_be_bytes());
    ad.push(algorithm.id());
    ad
}

/// Length of a wrapped data key: nonce (24) | key (32) | tag (16).
pub const WRAPPED_LEN: usize = 24 + KEY_LEN + TAG_LEN;

/// Wraps a data key under the master key, bound to its tenant, version and algorithm.
pub fn wrap_key(
    master: &MasterKey,
    tenant: &TenantId,
    version: u32,
    algorithm: Algorithm,
    key: &[u8; KEY_LEN],
) -> Result<Vec<u8>, CryptoError> {
    let nonce = random_bytes::<24>()?;
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.extend_from_slice(nonce.as_slice());
    out.extend_from_slice(key);
    let ad = wrap_ad(tenant, version, algorithm);
    let (n, body) = out.split_at_mut(24);
    let tag = wrapping_cipher(master)
        .encrypt_inout_detached((&*n).try_into().expect("24 bytes"), &ad, body.into())
        .map_err(|_| CryptoError::TooLarge)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

fn unwrap_raw(
    master: &MasterKey,
    tenant: &TenantId,
    version: u32,
    algorithm: Algorithm,
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(CryptoError::Unwrap);
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&wrapped[24..24 + KEY_LEN]);
    wrapping_cipher(master)
        .decrypt_inout_detached(
            wrapped[..24].try_into().expect("24 bytes"),
            &wrap_ad(tenant, version, algorithm),
            key.as_mut_slice().into(),
            wrapped[24 + KEY_LEN..].try_into().expect("16 bytes"),
        )
        .map_err(|_| CryptoError::Unwrap)?;
    Ok(key)
}

/// Unwraps a data key made by [`wrap_key`] for the same tenant, version and algorithm.
pub fn unwrap_key(
    master: &MasterKey,
    tenant: &TenantId,
    version: u32,
    algorithm: Algorithm,
    wrapped: &[u8],
) -> Result<DataKey, CryptoError> {
    let key = unwrap_raw(master, tenant, version, algorithm, wrapped)?;
    Ok(DataKey::from_bytes(algorithm, version, &key))
}

/// Master key rotation: the same data key, unwrapped with `from` and wrapped under `to`.
/// Data encrypted with it is untouched.
pub fn rewrap_key(
    from: &MasterKey,
    to: &MasterKey,
    tenant: &TenantId,
    version: u32,
    algorithm: Algorithm,
    wrapped: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key = unwrap_raw(from, tenant, version, algorithm, wrapped)?;
    wrap_key(to, tenant, version, algorithm, &key)
}

fn secret_ad(purpose: &[u8]) -> Vec<u8> {
    let mut ad = SECRET_AD_LABEL.to_vec();
    ad.extend_from_slice(&(purpose.len() as u64).to_be_bytes());
    ad.extend_from_slice(purpose);
    ad
}

/// Encrypts a small configuration secret (a JWT HMAC secret) under the master key, bound to
/// `purpose` (for example the key's kid and algorithm): nonce (24) | ciphertext | tag (16).
pub fn seal_secret(
    master: &MasterKey,
    purpose: &[u8],
    secret: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if secret.len() > 65_536 {
        return Err(CryptoError::TooLarge);
    }
    let nonce = random_bytes::<24>()?;
    let mut out = Vec::with_capacity(24 + secret.len() + TAG_LEN);
    out.extend_from_slice(nonce.as_slice());
    out.extend_from_slice(secret);
    let (n, body) = out.split_at_mut(24);
    let tag = wrapping_cipher(master)
        .encrypt_inout_detached(
            (&*n).try_into().expect("24 bytes"),
            &secret_ad(purpose),
            body.into(),
        )
        .map_err(|_| CryptoError::TooLarge)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens what [`seal_secret`] made for the same master key and purpose.
pub fn open_secret(
    master: &MasterKey,
    purpose: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < 24 + TAG_LEN {
        return Err(CryptoError::Unwrap);
    }
    let (nonce, rest) = sealed.split_at(24);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut out = Zeroizing::new(body.to_vec());
    wrapping_cipher(master)
        .decrypt_inout_detached(
            nonce.try_into().expect("24 bytes"),
            &secret_ad(purpose),
            out.as_mut_slice().into(),
            tag.try_into().expect("16 bytes"),
        )
        .map_err(|_| CryptoError::Unwrap)?;
    Ok(out)
}

/// Generates a fresh data key and returns it with its wrapped form.
pub fn generate_key(
    master: &MasterKey,
    tenant: &TenantId,
    version: u32,
    algorithm: Algorithm,
) -> Result<(DataKey, Vec<u8>), CryptoError> {
    let raw = random_bytes::<KEY_LEN>()?;
    let wrapped = wrap_key(master, tenant, version, algorithm, &raw)?;
    Ok((DataKey::from_bytes(algorithm, version, &raw), wrapped))
}

#[cfg(test)]
mod tests;

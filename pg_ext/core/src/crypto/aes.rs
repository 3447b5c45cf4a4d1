//! AES-256-GCM on two engines, chosen by the CPU: AWS-LC where it has its 512-bit path, ring
//! elsewhere (see the parent module's notes). Both give the same bytes; the tests run both.

use std::mem::ManuallyDrop;

use super::{CryptoError, KEY_LEN, TAG_LEN};

/// The AES-256-GCM implementation a data key runs on. Both give the same bytes; they differ
/// only in speed, which depends on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AesEngine {
    /// AWS-LC, where its 512-bit VAES path runs.
    AwsLc,
    /// ring, everywhere else.
    Ring,
}

impl AesEngine {
    /// The faster engine on this CPU: AWS-LC where it takes its AVX-512 AES-GCM path (the same
    /// features AWS-LC itself checks: AVX-512 F, DQ, BW and VL, VAES and VPCLMULQDQ), else ring.
    pub fn for_this_cpu() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f")
                && has!("avx512dq")
                && has!("avx512bw")
                && has!("avx512vl")
                && has!("vaes")
                && has!("vpclmulqdq")
            {
                return Self::AwsLc;
            }
        }
        Self::Ring
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::AwsLc => "aws-lc-rs",
            Self::Ring => "ring",
        }
    }
}

pub(super) enum Aes {
    AwsLc(AwsLcAes),
    Ring(Box<RingAes>),
}

impl Aes {
    pub(super) fn new(engine: AesEngine, key: &[u8; KEY_LEN]) -> Self {
        match engine {
            AesEngine::AwsLc => Self::AwsLc(AwsLcAes::new(key)),
            AesEngine::Ring => Self::Ring(Box::new(RingAes::new(key))),
        }
    }

    pub(super) fn seal(
        &self,
        nonce: &[u8],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        match self {
            Self::AwsLc(k) => k.seal(nonce, ad, buf),
            Self::Ring(k) => k.seal(nonce, ad, buf),
        }
    }

    /// Decrypts `ciphertext` into `out`, which the caller has checked is as long.
    pub(super) fn open(
        &self,
        nonce: &[u8],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        match self {
            Self::AwsLc(k) => k.open(nonce, ad, ciphertext, tag, out),
            Self::Ring(k) => {
                out.copy_from_slice(ciphertext);
                k.open(nonce, ad, out, tag)
            }
        }
    }
}

/// AWS-LC's AES-256-GCM key. The expanded key schedule and the GHASH table live in memory that
/// AWS-LC allocates, and AWS-LC's `OPENSSL_free` wipes an allocation before freeing it, so the
/// key is wiped when this is dropped.
pub(super) struct AwsLcAes(aws_lc_rs::aead::LessSafeKey);

impl AwsLcAes {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, key)
            .expect("AES-256-GCM takes a 32-byte key");
        Self(aws_lc_rs::aead::LessSafeKey::new(unbound))
    }

    fn nonce(nonce: &[u8]) -> Result<aws_lc_rs::aead::Nonce, CryptoError> {
        aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Truncated)
    }

    fn seal(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], CryptoError> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Self::nonce(nonce)?, aws_lc_rs::aead::Aad::from(ad), buf)
            .map_err(|_| CryptoError::TooLarge)?;
        tag.as_ref().try_into().map_err(|_| CryptoError::TooLarge)
    }

    /// Decrypts `ciphertext` into `out` (as long), reading the ciphertext where it lies.
    fn open(
        &self,
        nonce: &[u8],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        if tag.len() != TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        self.0
            .open_separate_gather(
                Self::nonce(nonce)?,
                aws_lc_rs::aead::Aad::from(ad),
                ciphertext,
                tag,
                out,
            )
            .map_err(|_| CryptoError::Authentication)
    }
}

/// ring's AES-256-GCM key (the expanded AES key schedule and the GHASH table), wiped when it is
/// dropped: ring does not zeroize on drop, the `chacha20poly1305` crate does.
pub(super) struct RingAes(ManuallyDrop<ring::aead::LessSafeKey>);

impl RingAes {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key)
            .expect("AES-256-GCM takes a 32-byte key");
        Self(ManuallyDrop::new(ring::aead::LessSafeKey::new(unbound)))
    }

    fn nonce(nonce: &[u8]) -> Result<ring::aead::Nonce, CryptoError> {
        ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Truncated)
    }

    fn seal(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], CryptoError> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Self::nonce(nonce)?, ring::aead::Aad::from(ad), buf)
            .map_err(|_| CryptoError::TooLarge)?;
        tag.as_ref().try_into().map_err(|_| CryptoError::TooLarge)
    }

    /// Decrypts `buf` in place. On failure ring has already overwritten `buf` with zeros.
    fn open(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        let tag = ring::aead::Tag::try_from(tag).map_err(|_| CryptoError::Truncated)?;
        self.0
            .open_in_place_separate_tag(
                Self::nonce(nonce)?,
                ring::aead::Aad::from(ad),
                tag,
                buf,
                0..,
            )
            .map(|_| ())
            .map_err(|_| CryptoError::Authentication)
    }
}

impl Drop for RingAes {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the key is dropped exactly once, here, and never used again. LessSafeKey is
        // plain data (an AES key schedule, a GHASH table and a `&'static` algorithm; no heap
        // pointers), so after its drop its bytes are ours to overwrite, and zeros are written
        // only to memory this struct owns.
        unsafe {
            ManuallyDrop::drop(&mut self.0);
            zeroize::zeroize_flat_type(&raw mut self.0);
        }
    }
}

//! The master key (KEK): 32 random bytes held outside the database.
//!
//! It is read once at server start, from a file of 64 hex digits or from the standard output of
//! an operator-supplied command (the hook for a KMS). Nothing here ever puts key bytes, or the
//! text they were parsed from, into an error, a `Debug` string or a log line: errors name the
//! problem and the path, never the content.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Length of the master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Upper bound on what we read from a key file or a key command. A key is 64 hex digits plus
/// perhaps a newline; anything much larger is not a key file and is refused without parsing.
const MAX_KEY_TEXT: usize = 4096;

/// How long a `master_key_command` may run before it is killed. The postmaster waits on it, so
/// a hung KMS client must not hang server start for ever.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

const FINGERPRINT_INFO: &[u8] = b"sealstore/v1/master-key-fingerprint";

/// The master key. Zeroized on drop; its `Debug` form is redacted.
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Where the master key comes from, as configured by the superuser-only settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    File(PathBuf),
    Command(String),
}

impl MasterKeySource {
    /// Picks the source from the two settings; exactly one of them must be set.
    pub fn from_settings(
        file: Option<&str>,
        command: Option<&str>,
    ) -> Result<Self, MasterKeyError> {
        let file = file.map(str::trim).filter(|s| !s.is_empty());
        let command = command.map(str::trim).filter(|s| !s.is_empty());
        match (file, command) {
            (Some(_), Some(_)) => Err(MasterKeyError::BothConfigured),
            (Some(path), None) => Ok(Self::File(PathBuf::from(path))),
            (None, Some(cmd)) => Ok(Self::Command(cmd.to_owned())),
            (None, None) => Err(MasterKeyError::NotConfigured),
        }
    }

    /// Reads and parses the key from this source.
    pub fn load(&self) -> Result<MasterKey, MasterKeyError> {
        match self {
            Self::File(path) => MasterKey::from_file(path),
            Self::Command(cmd) => MasterKey::from_command(cmd, DEFAULT_COMMAND_TIMEOUT),
        }
    }
}

/// Why the master key could not be had. Messages are safe to show to any SQL user and to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error("no master key is configured")]
    NotConfigured,
    #[error("both sealstore.master_key_file and sealstore.master_key_command are set")]
    BothConfigured,
    #[error("master key file \"{path}\" does not exist")]
    FileMissing { path: PathBuf },
    #[error("master key file \"{path}\" cannot be read: {reason}")]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("master key file \"{path}\" is not a regular file")]
    NotARegularFile { path: PathBuf },
    #[error("master key file \"{path}\" has mode {mode:04o}; it must not be accessible by group or others (chmod 600)")]
    TooPermissive { path: PathBuf, mode: u32 },
    #[error("master key is malformed: {reason}")]
    Malformed { reason: &'static str },
    #[error("master key command failed: {reason}")]
    CommandFailed { reason: String },
}

impl MasterKeyError {
    /// A stable, machine-readable name for the kind of failure (used for SQLSTATE mapping and
    /// by health checks).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::BothConfigured => "both_configured",
            Self::FileMissing { .. } => "file_missing",
            Self::FileUnreadable { .. } => "file_unreadable",
            Self::NotARegularFile { .. } => "not_a_regular_file",
            Self::TooPermissive { .. } => "too_permissive",
            Self::Malformed { .. } => "malformed",
            Self::CommandFailed { .. } => "command_failed",
        }
    }
}

impl MasterKey {
    /// Wraps raw key bytes (for tests and for keys that arrive already decoded).
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        let mut key = Self {
            bytes: Zeroizing::new([0u8; MASTER_KEY_LEN]),
        };
        key.bytes.copy_from_slice(&bytes);
        let mut bytes = bytes;
        bytes.zeroize();
        key
    }

    /// Parses exactly 64 hex digits, allowing surrounding ASCII white space (a trailing
    /// newline is what `echo` and editors leave).
    pub fn from_hex(text: &[u8]) -> Result<Self, MasterKeyError> {
        let trimmed = text.trim_ascii();
        if trimmed.len() != 2 * MASTER_KEY_LEN {
            return Err(MasterKeyError::Malformed {
                reason: "expected exactly 64 hexadecimal digits",
            });
        }
        let mut key = Self {
            bytes: Zeroizing::new([0u8; MASTER_KEY_LEN]),
        };
        hex::decode_to_slice(trimmed, key.bytes.as_mut_slice()).map_err(|_| {
            MasterKeyError::Malformed {
                reason: "expected exactly 64 hexadecimal digits",
            }
        })?;
        if key.bytes.iter().all(|b| *b == 0) {
            return Err(MasterKeyError::Malformed {
                reason: "the key is all zeros",
            });
        }
        Ok(key)
    }

    /// Reads the key from a file that only its owner may access.
    ///
    /// The mode is checked on the opened file, not the path, so a file swapped in between the
    /// check and the read is not trusted by mistake. Symbolic links are followed (mounted
    /// secrets are usually links), and the check applies to what they point at.
    pub fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => MasterKeyError::FileMissing {
                path: path.to_owned(),
            },
            _ => MasterKeyError::FileUnreadable {
                path: path.to_owned(),
                reason: e.to_string(),
            },
        })?;
        let meta = file
            .metadata()
            .map_err(|e| MasterKeyError::FileUnreadable {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        if !meta.is_file() {
            return Err(MasterKeyError::NotARegularFile {
                path: path.to_owned(),
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(MasterKeyError::TooPermissive {
                path: path.to_owned(),
                mode,
            });
        }
        let text = read_bounded(file).map_err(|e| match e {
            BoundedReadError::Io(reason) => MasterKeyError::FileUnreadable {
                path: path.to_owned(),
                reason,
            },
            BoundedReadError::TooLarge => MasterKeyError::Malformed {
                reason: "the key file is larger than 4 KiB",
            },
        })?;
        Self::from_hex(&text)
    }

    /// Runs `command` with `sh -c` and parses its standard output as the key.
    ///
    /// Standard error is discarded rather than passed to the server log: a misbehaving command
    /// might print the key there. Only the exit status is reported.
    pub fn from_command(command: &str, timeout: Duration) -> Result<Self, MasterKeyError> {
        let failed = |reason: String| MasterKeyError::CommandFailed { reason };
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(format!("cannot start /bin/sh: {e}")))?;
        // The key fits in the pipe buffer, so waiting before reading cannot deadlock for a
        // well-behaved command; a command that floods its output blocks and hits the timeout.
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(failed(format!("timed out after {} s", timeout.as_secs())));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(failed(format!("cannot wait for it: {e}"))),
            }
        };
        if !status.success() {
            return Err(failed(match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "killed by a signal".to_owned(),
            }));
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| failed("no output".to_owned()))?;
        let text = read_bounded(stdout).map_err(|e| match e {
            BoundedReadError::Io(reason) => failed(format!("cannot read its output: {reason}")),
            BoundedReadError::TooLarge => MasterKeyError::Malformed {
                reason: "the command printed more than 4 KiB",
            },
        })?;
        Self::from_hex(&text)
    }

    /// Identifies the key without revealing it: HKDF-SHA256 of the key with a fixed label,
    /// 128 bits, as 32 hex digits. Two clusters with the same key show the same fingerprint.
    pub fn fingerprint(&self) -> String {
        let mut out = [0u8; 16];
        self.derive(FINGERPRINT_INFO, &mut out);
        hex::encode(out)
    }

    /// Derives key material for one purpose (HKDF-SHA256, no salt, `info` names the purpose).
    /// Derived keys are the only way key bytes leave this type.
    pub fn derive(&self, info: &[u8], out: &mut [u8]) {
        Hkdf::<Sha256>::new(None, self.bytes.as_slice())
            .expand(info, out)
            .expect("HKDF-SHA256 output of at most 8160 bytes");
    }
}

enum BoundedReadError {
    Io(String),
    TooLarge,
}

/// Reads at most `MAX_KEY_TEXT` bytes into a buffer that is allocated once (so no copy of the
/// key is left behind by a reallocation) and zeroized when dropped.
fn read_bounded(reader: impl Read) -> Result<Zeroizing<Vec<u8>>, BoundedReadError> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_KEY_TEXT + 1));
    reader
        .take(MAX_KEY_TEXT as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| BoundedReadError::Io(e.to_string()))?;
    if buf.len() > MAX_KEY_TEXT {
        return Err(BoundedReadError::TooLarge);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests;

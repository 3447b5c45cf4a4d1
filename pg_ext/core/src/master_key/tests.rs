use super::*;
use std::fs;
use std::io::Write;

fn random_key_hex() -> String {
    let mut bytes = [0u8; MASTER_KEY_LEN];
    getrandom::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

fn key_file(dir: &tempfile::TempDir, name: &str, content: &[u8], mode: u32) -> PathBuf {
    let path = dir.path().join(name);
    let mut f = fs::File::create(&path).unwrap();
    f.write_all(content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn parses_hex_with_surrounding_whitespace() {
    let hex = random_key_hex();
    let a = MasterKey::from_hex(hex.as_bytes()).unwrap();
    let b = MasterKey::from_hex(format!("  {hex}\n").as_bytes()).unwrap();
    let c = MasterKey::from_hex(hex.to_uppercase().as_bytes()).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.fingerprint(), c.fingerprint());
}

#[test]
fn rejects_malformed_text() {
    let hex = random_key_hex();
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\n".to_vec(),
        hex.as_bytes()[..62].to_vec(),
        format!("{hex}00").into_bytes(),
        format!("{}zz", &hex[..62]).into_bytes(),
        format!("{} {}", &hex[..32], &hex[32..]).into_bytes(),
        vec![0xff; 64],
        "0".repeat(64).into_bytes(),
    ];
    for case in cases {
        let err = MasterKey::from_hex(&case).unwrap_err();
        assert_eq!(err.kind(), "malformed", "{case:?}");
    }
}

#[test]
fn errors_and_debug_never_contain_the_key() {
    let hex = random_key_hex();
    let key = MasterKey::from_hex(hex.as_bytes()).unwrap();
    let debug = format!("{key:?}");
    assert_eq!(debug, "MasterKey(<redacted>)");
    assert!(!key.fingerprint().contains(&hex[..16]));
    // A key with one bad digit: the message must not echo any of the digits.
    let bad = format!("{}g", &hex[..63]);
    let msg = MasterKey::from_hex(bad.as_bytes()).unwrap_err().to_string();
    assert!(!msg.contains(&hex[..8]), "{msg}");
    let dir = tempfile::tempdir().unwrap();
    let path = key_file(&dir, "open.key", hex.as_bytes(), 0o644);
    let msg = MasterKey::from_file(&path).unwrap_err().to_string();
    assert!(!msg.contains(&hex[..8]), "{msg}");
}

#[test]
fn fingerprint_is_stable_distinct_and_not_the_key() {
    let hex = random_key_hex();
    let a = MasterKey::from_hex(hex.as_bytes()).unwrap();
    let fp = a.fingerprint();
    assert_eq!(fp.len(), 32);
    assert!(fp.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        fp,
        MasterKey::from_hex(hex.as_bytes()).unwrap().fingerprint()
    );
    let other = MasterKey::from_hex(random_key_hex().as_bytes()).unwrap();
    assert_ne!(fp, other.fingerprint());
    assert!(!hex.contains(&fp));
}

#[test]
fn fingerprint_matches_an_independent_hkdf_computation() {
    // RFC 5869 HKDF-SHA256 with an empty salt, computed here with HMAC by hand from the
    // definition, so a change of derivation (label, salt, length) is caught.
    use sha2::Digest;
    fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(key);
        let mut inner = Sha256::new();
        inner.update(k.map(|b| b ^ 0x36));
        inner.update(data);
        let mut outer = Sha256::new();
        outer.update(k.map(|b| b ^ 0x5c));
        outer.update(inner.finalize());
        outer.finalize().into()
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).unwrap();
    let prk = hmac(&[0u8; 32], &raw);
    let mut t1_input = FINGERPRINT_INFO.to_vec();
    t1_input.push(1);
    let t1 = hmac(&prk, &t1_input);
    let key = MasterKey::from_bytes(raw);
    assert_eq!(key.fingerprint(), hex::encode(&t1[..16]));
}

#[test]
fn file_with_owner_only_mode_loads() {
    let dir = tempfile::tempdir().unwrap();
    let hex = random_key_hex();
    for mode in [0o600, 0o400] {
        let path = key_file(
            &dir,
            &format!("k{mode:o}"),
            format!("{hex}\n").as_bytes(),
            mode,
        );
        let key = MasterKey::from_file(&path).unwrap();
        assert_eq!(
            key.fingerprint(),
            MasterKey::from_hex(hex.as_bytes()).unwrap().fingerprint()
        );
    }
}

#[test]
fn file_readable_or_writable_by_group_or_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hex = random_key_hex();
    for mode in [0o640, 0o604, 0o644, 0o660, 0o606, 0o610, 0o601, 0o666] {
        let path = key_file(&dir, &format!("k{mode:o}"), hex.as_bytes(), mode);
        let err = MasterKey::from_file(&path).unwrap_err();
        assert_eq!(
            err,
            MasterKeyError::TooPermissive { path, mode },
            "mode {mode:o}"
        );
    }
}

#[test]
fn missing_file_directory_and_oversized_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.key");
    assert_eq!(
        MasterKey::from_file(&missing).unwrap_err().kind(),
        "file_missing"
    );

    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        MasterKey::from_file(&sub).unwrap_err().kind(),
        "not_a_regular_file"
    );

    let big = key_file(&dir, "big.key", &vec![b'a'; MAX_KEY_TEXT + 1], 0o600);
    assert_eq!(MasterKey::from_file(&big).unwrap_err().kind(), "malformed");

    let exactly_limit = key_file(&dir, "pad.key", &vec![b'\n'; MAX_KEY_TEXT], 0o600);
    assert_eq!(
        MasterKey::from_file(&exactly_limit).unwrap_err().kind(),
        "malformed"
    );
}

#[test]
fn symlink_is_followed_and_target_mode_checked() {
    let dir = tempfile::tempdir().unwrap();
    let hex = random_key_hex();
    let target = key_file(&dir, "target.key", hex.as_bytes(), 0o600);
    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(MasterKey::from_file(&link).is_ok());
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        MasterKey::from_file(&link).unwrap_err().kind(),
        "too_permissive"
    );
}

#[test]
fn command_output_is_the_key() {
    let hex = random_key_hex();
    let key =
        MasterKey::from_command(&format!("printf '%s\\n' {hex}"), DEFAULT_COMMAND_TIMEOUT).unwrap();
    assert_eq!(
        key.fingerprint(),
        MasterKey::from_hex(hex.as_bytes()).unwrap().fingerprint()
    );
}

#[test]
fn failing_slow_or_chatty_commands_are_refused() {
    let hex = random_key_hex();
    let err = MasterKey::from_command(&format!("echo {hex}; exit 3"), DEFAULT_COMMAND_TIMEOUT)
        .unwrap_err();
    assert_eq!(
        err,
        MasterKeyError::CommandFailed {
            reason: "exited with status 3".into()
        }
    );
    assert!(!err.to_string().contains(&hex[..8]));

    let err = MasterKey::from_command("sleep 5", Duration::from_millis(200)).unwrap_err();
    assert_eq!(err.kind(), "command_failed");
    assert!(err.to_string().contains("timed out"), "{err}");

    let err = MasterKey::from_command("echo not-a-key", DEFAULT_COMMAND_TIMEOUT).unwrap_err();
    assert_eq!(err.kind(), "malformed");

    let err =
        MasterKey::from_command("head -c 5000 /dev/zero", DEFAULT_COMMAND_TIMEOUT).unwrap_err();
    assert_eq!(err.kind(), "malformed");

    // What the command writes to standard error is dropped, never parsed or reported.
    let err =
        MasterKey::from_command(&format!("echo {hex} >&2"), DEFAULT_COMMAND_TIMEOUT).unwrap_err();
    assert_eq!(err.kind(), "malformed");
}

#[test]
fn source_is_chosen_from_exactly_one_setting() {
    assert_eq!(
        MasterKeySource::from_settings(Some("/k"), None).unwrap(),
        MasterKeySource::File("/k".into())
    );
    assert_eq!(
        MasterKeySource::from_settings(Some("  "), Some("kms get")).unwrap(),
        MasterKeySource::Command("kms get".into())
    );
    assert_eq!(
        MasterKeySource::from_settings(None, Some("")).unwrap_err(),
        MasterKeyError::NotConfigured
    );
    assert_eq!(
        MasterKeySource::from_settings(Some("/k"), Some("x")).unwrap_err(),
        MasterKeyError::BothConfigured
    );
}

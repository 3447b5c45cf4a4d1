use super::*;

const URL: &str = "postgres://gw:s3cr3t-pw@127.0.0.1:5432/app";

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    let mut argv = vec!["sealstore-gateway"];
    argv.extend_from_slice(args);
    Config::from_cli(Cli::try_parse_from(argv).expect("flags parse"))
}

#[test]
fn defaults_apply_with_only_a_url() {
    let c = parse(&["--pg-url", URL]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.db_pool_size, 16);
    assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.pg.config().get_user(), Some("gw"));
}

#[test]
fn url_is_required_and_exclusive_with_file() {
    let err = parse(&[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("SEALSTORE_GATEWAY_PG_URL: required"),
        "{err}"
    );
    let err = parse(&["--pg-url", URL, "--pg-url-file", "/x"]).unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
}

#[test]
fn url_from_file_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url");
    std::fs::write(&path, format!("{URL}\n")).unwrap();
    let c = parse(&["--pg-url-file", path.to_str().unwrap()]).unwrap();
    assert_eq!(c.pg.config().get_dbname(), Some("app"));
    let err = parse(&["--pg-url-file", "/nonexistent/url"]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("SEALSTORE_GATEWAY_PG_URL_FILE: cannot read"),
        "{err}"
    );
}

#[test]
fn bad_url_errors_never_echo_the_password() {
    for bad in [
        "postgres://gw:s3cr3t-pw@127.0.0.1:notaport/app",
        "postgres://gw:s3cr3t-pw@[::1/app",
        "host=127.0.0.1 password=s3cr3t-pw port=x",
        "postgres://:s3cr3t-pw@127.0.0.1/app?user=",
    ] {
        let err = parse(&["--pg-url", bad]).expect_err(bad).to_string();
        assert!(err.starts_with("SEALSTORE_GATEWAY_PG_URL:"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
    let c = parse(&["--pg-url", URL]).unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[test]
fn numbers_and_addresses_are_checked() {
    let cases: &[(&[&str], &str)] = &[
        (&["--listen", "localhost"], "SEALSTORE_GATEWAY_LISTEN"),
        (&["--listen", "127.0.0.1:99999"], "SEALSTORE_GATEWAY_LISTEN"),
        (&["--db-pool-size", "0"], "SEALSTORE_DB_POOL_SIZE"),
        (&["--db-pool-size", "many"], "SEALSTORE_DB_POOL_SIZE"),
        (
            &["--db-read-connections", "0"],
            "SEALSTORE_DB_READ_CONNECTIONS",
        ),
        (&["--db-pipeline-depth", "0"], "SEALSTORE_DB_PIPELINE_DEPTH"),
        (
            &["--db-pipeline-depth", "2000"],
            "SEALSTORE_DB_PIPELINE_DEPTH",
        ),
        (&["--db-timeout-secs", "61"], "SEALSTORE_DB_TIMEOUT_SECS"),
        (
            &["--request-timeout-secs=-1"],
            "SEALSTORE_REQUEST_TIMEOUT_SECS",
        ),
        (
            &["--shutdown-timeout-secs", "601"],
            "SEALSTORE_SHUTDOWN_TIMEOUT_SECS",
        ),
        (&["--sched-policy", "fifo"], "SEALSTORE_SCHED_POLICY"),
    ];
    for (args, name) in cases {
        let mut all = vec!["--pg-url", URL];
        all.extend_from_slice(args);
        let err = parse(&all).unwrap_err().to_string();
        assert!(err.starts_with(name), "{args:?}: {err}");
    }
    let c = parse(&[
        "--pg-url",
        URL,
        "--listen",
        "[::1]:0",
        "--shutdown-timeout-secs",
        "0",
    ])
    .unwrap();
    assert_eq!(c.listen.port(), 0);
    assert_eq!(c.shutdown_timeout, Duration::ZERO);
}

#[test]
fn help_hides_the_url_value() {
    // clap prints `[env: NAME=value]` in --help unless told not to; the URL holds a password.
    use clap::CommandFactory;
    let cmd = Cli::command();
    let url = cmd
        .get_arguments()
        .find(|a| a.get_id() == "pg_url")
        .unwrap();
    assert!(url.is_hide_env_values_set());
}

#[test]
fn hardening_defaults() {
    let c = parse(&["--pg-url", URL]).unwrap();
    assert!(!c.production);
    assert!(!c.transaction_pooling);
    assert!(c.tls.is_none());
    assert!(c.cors_origins.is_empty());
    assert_eq!(c.max_body_bytes, 1 << 20);
    assert_eq!(c.allowed_hosts, None);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(c.worker_threads, default_worker_threads(cpus));
    assert_eq!(
        [1, 2, 3, 4, 16].map(default_worker_threads),
        [1, 1, 1, 2, 8],
        "half the CPUs, at least one"
    );
    assert_eq!(c.db_read_connections, default_read_connections(cpus));
    assert_eq!([0, 1, 2, 16].map(default_read_connections), [2, 2, 4, 32]);
    assert_eq!(c.db_pipeline_depth, 32);
    let set = parse(&[
        "--pg-url",
        URL,
        "--db-read-connections",
        "1",
        "--db-pipeline-depth",
        "3",
    ])
    .unwrap();
    assert_eq!((set.db_read_connections, set.db_pipeline_depth), (1, 3));
    let set = parse(&["--pg-url", URL, "--worker-threads", "3"]).unwrap();
    assert_eq!(set.worker_threads, 3);
    assert!(parse(&["--pg-url", URL, "--worker-threads", "0"]).is_err());
    assert_eq!(c.sched_policy, crate::sched::Policy::Batch);
    let set = parse(&["--pg-url", URL, "--sched-policy", "normal"]).unwrap();
    assert_eq!(set.sched_policy, crate::sched::Policy::Normal);
    assert_eq!(
        default_hosts("127.0.0.1:8080".parse().unwrap()),
        ["127.0.0.1", "127.0.0.1:8080", "localhost", "localhost:8080"]
    );
    assert_eq!(
        default_hosts("[::1]:9".parse().unwrap()),
        ["[::1]", "[::1]:9", "localhost", "localhost:9"]
    );
    assert_eq!(
        default_hosts("10.1.2.3:80".parse().unwrap()),
        ["10.1.2.3", "10.1.2.3:80"]
    );
    assert!(default_hosts("0.0.0.0:80".parse().unwrap()).is_empty());
}

#[test]
fn lists_are_checked() {
    let c = parse(&[
        "--pg-url",
        URL,
        "--cors-origins",
        "https://App.example.com, http://localhost:3000",
        "--allowed-hosts",
        "api.example.com,api.example.com:443",
    ])
    .unwrap();
    assert_eq!(
        c.cors_origins,
        ["https://app.example.com", "http://localhost:3000"]
    );
    assert_eq!(
        c.allowed_hosts.as_deref(),
        Some(
            &[
                "api.example.com".to_owned(),
                "api.example.com:443".to_owned()
            ][..]
        )
    );
    for bad in ["*", "app.example.com", "ftp://x", "https://"] {
        let err = parse(&["--pg-url", URL, "--cors-origins", bad]).unwrap_err();
        assert!(
            err.to_string().starts_with("SEALSTORE_CORS_ORIGINS"),
            "{err}"
        );
    }
    for bad in [",", "a b", "host/path"] {
        let err = parse(&["--pg-url", URL, "--allowed-hosts", bad]).unwrap_err();
        assert!(
            err.to_string().starts_with("SEALSTORE_ALLOWED_HOSTS"),
            "{err}"
        );
    }
    let err = parse(&["--pg-url", URL, "--tls-cert-file", "/c"]).unwrap_err();
    assert!(err.to_string().contains("both"), "{err}");
    for (flag, value) in [
        ("--max-body-bytes", "10"),
        ("--rate-per-ip", "0"),
        ("--statement-timeout-ms", "abc"),
        ("--production", "maybe"),
        ("--db-transaction-pooling", "maybe"),
        ("--worker-threads", "0"),
    ] {
        assert!(
            parse(&["--pg-url", URL, flag, value]).is_err(),
            "{flag} {value}"
        );
    }
}

#[test]
fn production_refuses_weak_or_missing_secrets() {
    let strong = "postgres://gw:Zq8vN3xL0pT7rW2k-9yHc@db.internal:5432/app";
    let tls = ["--tls-cert-file", "/c.pem", "--tls-key-file", "/k.pem"];
    let prod = |url: &str, extra: &[&str]| {
        let mut args = vec!["--production", "true", "--pg-url", url];
        args.extend_from_slice(extra);
        parse(&args)
    };
    assert!(prod(strong, &tls).unwrap().production);
    for (url, why) in [
        ("postgres://gw@db.internal/app", "has no password"),
        ("postgres://gw:short@db.internal/app", "under 16 bytes"),
        (
            "postgres://gw:aaaaaaaaaaaaaaaaaaaa@db.internal/app",
            "repetitive",
        ),
    ] {
        let err = prod(url, &tls).unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
        assert!(!err.contains("short") && !err.contains("aaaa"), "{err}");
    }
    let err = prod(strong, &[]).unwrap_err().to_string();
    assert!(err.contains("TLS"), "{err}");
    let mut wildcard = tls.to_vec();
    wildcard.extend(["--listen", "0.0.0.0:8443"]);
    let err = prod(strong, &wildcard).unwrap_err().to_string();
    assert!(err.starts_with("SEALSTORE_ALLOWED_HOSTS"), "{err}");
    wildcard.extend(["--allowed-hosts", "api.example.com"]);
    assert!(prod(strong, &wildcard).is_ok());
}

#[test]
fn replica_urls_keep_their_case_and_their_hosts() {
    let c = parse(&[
        "--pg-url",
        URL,
        "--db-replica-urls",
        "postgresql://gw:MixedCase-PW@10.0.0.2:5432/App, postgres://gw:pw2@h1:5432,h2:5433/app",
    ])
    .unwrap();
    assert_eq!(c.replicas.len(), 2);
    assert_eq!(
        c.replicas[0].config().get_password(),
        Some(&b"MixedCase-PW"[..])
    );
    assert_eq!(c.replicas[0].config().get_dbname(), Some("App"));
    assert_eq!(c.replicas[1].config().get_hosts().len(), 2);
    assert_eq!(c.replica_max_lag_bytes, 16 << 20);
    assert_eq!(c.read_your_writes, Duration::from_secs(5));
    assert!(parse(&["--pg-url", URL]).unwrap().replicas.is_empty());
    let err = parse(&[
        "--pg-url",
        URL,
        "--db-replica-urls",
        "postgresql://gw:secret-pw@",
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("SEALSTORE_DB_REPLICA_URLS: names no host"),
        "{err}"
    );
    assert!(!err.to_string().contains("secret-pw"));
    let err = parse(&[
        "--pg-url",
        URL,
        "--db-replica-urls",
        "not a url at all secret-pw",
    ])
    .unwrap_err();
    assert!(!err.to_string().contains("secret-pw"), "{err}");
}

#[test]
fn replica_urls_come_from_a_file_too() {
    let dir = std::env::temp_dir().join(format!("sealstore-replicas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("replicas");
    std::fs::write(
        &file,
        "postgresql://gw:Pw-1@10.0.0.2/app\npostgresql://gw:Pw-2@10.0.0.3/app\n",
    )
    .unwrap();
    let c = parse(&[
        "--pg-url",
        URL,
        "--db-replica-urls-file",
        file.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(c.replicas.len(), 2);
    assert_eq!(c.replicas[1].config().get_password(), Some(&b"Pw-2"[..]));
    let err = parse(&[
        "--pg-url",
        URL,
        "--db-replica-urls",
        "postgresql://gw:x@h/app",
        "--db-replica-urls-file",
        file.to_str().unwrap(),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

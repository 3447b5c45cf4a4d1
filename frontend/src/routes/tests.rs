use super::*;

#[test]
fn openapi_document_lists_exactly_the_routes() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    // Every request schema is closed, as the parser is (deny_unknown_fields).
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if name.starts_with("New") || name.ends_with("Request") || name == "SecretValue" {
            assert_eq!(schema["additionalProperties"], false, "{name}");
        }
    }
}

#[test]
fn resolve_matches_templates_methods_and_decodes_parameters() {
    let found = |m: Method, p: &str| match resolve(&m, p) {
        Resolved::Found(r, t, param) => (r, t, param),
        other => panic!("{m} {p}: {other:?}"),
    };
    assert_eq!(
        found(Method::POST, "/v1/collections/my%20docs/search"),
        (
            Route::Search,
            "/v1/collections/{name}/search",
            Some("my docs".to_owned())
        )
    );
    assert_eq!(found(Method::HEAD, "/healthz").0, Route::Healthz);
    assert_eq!(
        found(Method::DELETE, "/v1/documents/x").0,
        Route::DeleteDocument
    );
    assert_eq!(
        resolve(&Method::PATCH, "/v1/documents/x"),
        Resolved::MethodNotAllowed("/v1/documents/{id}")
    );
    for missing in [
        "/v1/documents/",
        "/v1/documents",
        "/v1/documents/a/b",
        "/",
        "/V1/tenants",
    ] {
        assert_eq!(
            resolve(&Method::GET, missing),
            Resolved::NotFound,
            "{missing}"
        );
    }
    assert_eq!(resolve(&Method::GET, "/v1/secrets/%ff"), Resolved::BadPath);
    assert_eq!(
        allowed_methods("/v1/secrets/{name}"),
        "PUT, GET, DELETE, HEAD"
    );
    assert_eq!(allowed_methods("/v1/tenants"), "POST");
}

#[test]
fn bearer_tokens_only_from_one_well_formed_header() {
    let headers = |values: &[&str]| {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    };
    assert_eq!(bearer(&headers(&["Bearer abc"])), Some("abc"));
    assert_eq!(bearer(&headers(&["bearer abc"])), Some("abc"));
    for bad in [
        &["Basic abc"][..],
        &["Bearer"],
        &["Bearer "],
        &["Bearer a b"],
        &["abc"],
        &["Bearer a", "Bearer b"],
        &[],
    ] {
        assert_eq!(bearer(&headers(bad)), None, "{bad:?}");
    }
}

#[test]
fn credentials_in_the_query_string_are_spotted() {
    for q in [
        "access_token=x",
        "a=1&token=x",
        "API_KEY=x",
        "%6Bey=x",
        "jwt",
    ] {
        assert!(credential_in_query(Some(q)), "{q}");
    }
    for q in ["a=1", "tokens=2", ""] {
        assert!(!credential_in_query(Some(q)), "{q}");
    }
    assert!(!credential_in_query(None));
}

fn refused(route: Route, param: &str, body: &[u8]) {
    match prepare(route, param.to_owned(), body) {
        Err(Refusal(status, code, message)) => {
            assert_eq!((status, code), (StatusCode::BAD_REQUEST, "invalid_request"));
            // Never an echo of the input.
            assert!(!message.contains("s3cret"), "{message}");
        }
        Ok(_) => panic!("accepted {}", String::from_utf8_lossy(body)),
    }
}

#[test]
fn bodies_are_strict() {
    let ok = br#"{"name": "c", "dims": 3}"#;
    let p = prepare(Route::CreateCollection, String::new(), ok)
        .ok()
        .unwrap();
    assert!(!p.read_only);
    assert_eq!(p.params.len(), 4);
    refused(
        Route::CreateCollection,
        "",
        br#"{"name": "c", "dims": 3, "x": 1}"#,
    );
    refused(
        Route::CreateCollection,
        "",
        br#"{"name": "c", "dims": "3"}"#,
    );
    refused(Route::CreateCollection, "", br#"{"name": "c"}"#);
    refused(
        Route::CreateCollection,
        "",
        br#"{"name": "c", "dims": 3.5}"#,
    );
    refused(
        Route::CreateCollection,
        "",
        br#"{"name": "c", "dims": 99999999999}"#,
    );
    refused(Route::CreateCollection, "", b"[]");
    refused(Route::CreateCollection, "", b"{");
    refused(Route::CreateCollection, "", b"");
    refused(
        Route::PutSecret,
        "n",
        br#"{"value": "s3cret", "value2": 1}"#,
    );
    refused(Route::PutSecret, "n", br#"{"value": 7}"#);
    refused(
        Route::PutDocument,
        "c",
        br#"{"content": "s3cret", "embedding": [1e39]}"#,
    );
    refused(
        Route::PutDocument,
        "c",
        br#"{"content": "x", "embedding": ["1"]}"#,
    );
    refused(Route::Search, "c", br#"{"vector": [1, 2], "k": null}"#);
    refused(Route::GetDocument, "not-a-uuid", b"");
    refused(
        Route::GetDocument,
        "6F1C2A4E-8D3B-4C1A-9E2F-0A1B2C3D4E5F0",
        b"",
    );
    refused(
        Route::GetDocument,
        "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f",
        b"{}",
    );
    refused(
        Route::CreateApiKey,
        "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f",
        br#"{"name": "k", "scopes": "read"}"#,
    );
}

#[test]
fn reads_are_read_only_transactions() {
    let id = "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f";
    let ro = |route, param: &str, body: &[u8]| {
        prepare(route, param.to_owned(), body)
            .ok()
            .unwrap()
            .read_only
    };
    assert!(ro(Route::GetDocument, id, b""));
    assert!(ro(Route::Search, "c", br#"{"vector": [1]}"#));
    assert!(ro(Route::GetSecret, "n", b""));
    assert!(ro(Route::Metrics, "", b""));
    assert!(!ro(Route::DeleteDocument, id, b""));
    assert!(!ro(Route::PutSecret, "n", br#"{"value": "v"}"#));
    assert!(!ro(Route::RotateKey, id, b""));
}

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

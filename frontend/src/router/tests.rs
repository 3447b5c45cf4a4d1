use super::*;

/// As the OpenAPI document names a scope (`x-scope`); `None` for a route without a credential.
fn scope_name(scope: Scope) -> Option<&'static str> {
    match scope {
        Scope::None => None,
        Scope::Read => Some("read"),
        Scope::Write => Some("write"),
        Scope::Admin => Some("admin"),
        Scope::SystemAdmin => Some("system-admin"),
        Scope::Any => Some("any"),
    }
}

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
        .map(|spec| (spec.method.to_owned(), spec.path.to_owned()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    // Each operation states the scope the table gives its route, and public ones need none.
    for spec in &ROUTES {
        let op = &doc["paths"][spec.path][spec.method.to_lowercase()];
        assert_eq!(
            op["x-scope"].as_str(),
            scope_name(spec.scope),
            "{} {}",
            spec.method,
            spec.path
        );
        assert_eq!(
            op["security"] == serde_json::json!([]),
            spec.scope == Scope::None,
            "{}",
            spec.path
        );
    }
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
        Resolved::Found(spec, param) => (spec.method, spec.path, param),
        other => panic!("{m} {p}: {other:?}"),
    };
    assert_eq!(
        found(Method::POST, "/v1/collections/my%20docs/search"),
        (
            "POST",
            "/v1/collections/{name}/search",
            Some("my docs".to_owned())
        )
    );
    assert_eq!(found(Method::HEAD, "/healthz").1, "/healthz");
    assert_eq!(
        found(Method::DELETE, "/v1/documents/x"),
        ("DELETE", "/v1/documents/{id}", Some("x".to_owned()))
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
fn every_route_function_is_called_with_its_token_first() {
    let Target::Call(call) = &ROUTES
        .iter()
        .find(|s| s.path == "/v1/documents/{id}" && s.method == "GET")
        .unwrap()
        .target
    else {
        panic!("a route function serves GET /v1/documents/{{id}}")
    };
    assert_eq!(
        call.statement(1),
        "SELECT subject, body FROM sealstore.route_get_document($1, $2)"
    );
    // Each route function name is an identifier, and reads go to the read connections only.
    for spec in &ROUTES {
        if let Target::Call(call) | Target::Metrics(call) | Target::Events(call) = &spec.target {
            assert!(call
                .function
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            // The feed's call goes to the primary: its stream reads what the primary wrote.
            let is_read = (spec.method == "GET" && !matches!(spec.target, Target::Events(_)))
                || call.function == "search";
            assert_eq!(call.read_only, is_read, "{}", spec.path);
            assert!(spec.scope != Scope::None, "{}", spec.path);
        } else {
            assert_eq!(spec.scope, Scope::None, "{}", spec.path);
        }
    }
}

use super::*;

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

#[test]
fn nesting_is_bounded_and_brackets_in_strings_do_not_count() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(!nested_deeper_than(
        deep(MAX_JSON_DEPTH).as_bytes(),
        MAX_JSON_DEPTH
    ));
    assert!(nested_deeper_than(
        deep(MAX_JSON_DEPTH + 1).as_bytes(),
        MAX_JSON_DEPTH
    ));
    assert!(nested_deeper_than(deep(100_000).as_bytes(), MAX_JSON_DEPTH));
    let in_string = format!(r#"{{"content": "{}", "esc": "\"[[["}}"#, "[{".repeat(200));
    assert!(!nested_deeper_than(in_string.as_bytes(), MAX_JSON_DEPTH));
    // A document whose metadata nests 100 levels is refused before the database.
    let body = format!(
        r#"{{"content": "x", "embedding": [1, 2, 3], "metadata": {}}}"#,
        format!("{}1{}", r#"{"a": "#.repeat(100), "}".repeat(100))
    );
    refused(Route::PutDocument, "c", body.as_bytes());
}

#[test]
fn ids_have_one_spelling() {
    let id = "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f";
    assert!(prepare(Route::GetDocument, id.to_owned(), b"").is_ok());
    for other in [
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
    ] {
        refused(Route::GetDocument, &other, b"");
    }
}

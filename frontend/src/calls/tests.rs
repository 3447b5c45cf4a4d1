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

use hyper::StatusCode;

use super::*;

fn refused(plan: Plan, param: &str, body: &[u8]) {
    match plan(param, body) {
        Err(Failure::Refused(m)) => {
            assert_eq!(
                (m.status, m.code),
                (StatusCode::BAD_REQUEST, "invalid_request")
            );
            // Never an echo of the input.
            assert!(!m.message.contains("s3cret"), "{}", m.message);
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("accepted {}", String::from_utf8_lossy(body)),
    }
}

#[test]
fn bodies_are_strict() {
    let ok = br#"{"name": "c", "dims": 3}"#;
    assert_eq!(create_collection("", ok).ok().unwrap().len(), 4);
    refused(
        create_collection,
        "",
        br#"{"name": "c", "dims": 3, "x": 1}"#,
    );
    refused(create_collection, "", br#"{"name": "c", "dims": "3"}"#);
    refused(create_collection, "", br#"{"name": "c"}"#);
    refused(create_collection, "", br#"{"name": "c", "dims": 3.5}"#);
    refused(
        create_collection,
        "",
        br#"{"name": "c", "dims": 99999999999}"#,
    );
    refused(create_collection, "", b"[]");
    refused(create_collection, "", b"{");
    refused(create_collection, "", b"");
    refused(put_secret, "n", br#"{"value": "s3cret", "value2": 1}"#);
    refused(put_secret, "n", br#"{"value": 7}"#);
    refused(
        put_document,
        "c",
        br#"{"content": "s3cret", "embedding": [1e39]}"#,
    );
    refused(
        put_document,
        "c",
        br#"{"content": "x", "embedding": ["1"]}"#,
    );
    refused(search, "c", br#"{"vector": [1, 2], "k": null}"#);
    refused(id, "not-a-uuid", b"");
    refused(id, "6F1C2A4E-8D3B-4C1A-9E2F-0A1B2C3D4E5F0", b"");
    refused(id, "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f", b"{}");
    refused(
        create_api_key,
        "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f",
        br#"{"name": "k", "scopes": "read"}"#,
    );
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
    let metadata = format!("{}1{}", r#"{"a": "#.repeat(100), "}".repeat(100));
    let body = format!(r#"{{"content": "x", "embedding": [1, 2, 3], "metadata": {metadata}}}"#);
    refused(put_document, "c", body.as_bytes());
}

#[test]
fn ids_have_one_spelling() {
    let id = "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f";
    assert_eq!(super::id(id, b"").ok().unwrap().len(), 1);
    for other in [
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
    ] {
        refused(super::id, &other, b"");
    }
}

#[test]
fn vectors_are_bounded_and_finite_and_sent_in_binary() {
    let many = format!(r#"{{"vector": [{}]}}"#, vec!["1"; 16001].join(","));
    refused(search, "c", many.as_bytes());
    refused(search, "c", br#"{"vector": [1e39]}"#);
    let params = search("c", br#"{"vector": [1, 2], "k": 3}"#).ok().unwrap();
    let types: Vec<&str> = params.iter().map(|p| p.ty().name()).collect();
    assert_eq!(types, ["text", "vector", "int4", "text"]);
    // Left for the server to infer: the type's OID differs between databases.
    assert_eq!(params[1].ty().oid(), 0);
    let mut out = bytes::BytesMut::new();
    let vector = VectorParam(vec![1.0, 2.0]);
    let vector_type = vector_type();
    assert!(VectorParam::accepts(&vector_type));
    assert!(!VectorParam::accepts(&Type::FLOAT4_ARRAY));
    vector.to_sql(&vector_type, &mut out).unwrap();
    assert_eq!(
        out.as_ref(),
        sealstore_core::vector::to_binary(&[1.0, 2.0]).as_slice()
    );
}

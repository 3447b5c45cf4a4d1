use super::*;

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

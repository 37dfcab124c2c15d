//! Helpers shared by the HTTP API tests: problem-document assertions and request bodies.

use e2e::{profile, ticket, Answer};
use serde_json::{json, Value};

/// Whether `code` is a snake_case identifier.
pub(crate) fn is_snake_case(code: &str) -> bool {
    !code.is_empty()
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Asserts `a` is an RFC 9457 problem document with `status` and a snake_case `code`.
#[track_caller]
pub(crate) fn assert_problem(a: &Answer, status: u16) {
    assert_eq!(a.status, status, "expected {status}, got {a:?}");
    assert!(
        a.content_type.starts_with("application/problem+json"),
        "an error is application/problem+json, got {:?}: {a:?}",
        a.content_type
    );
    for field in ["type", "title", "detail", "code"] {
        assert!(
            a.body[field].is_string(),
            "a problem has a string `{field}`: {a:?}"
        );
    }
    assert_eq!(a.body["status"], status, "the problem's status: {a:?}");
    let code = a.body["code"].as_str().unwrap_or_default();
    assert!(is_snake_case(code), "code {code:?} is snake_case: {a:?}");
}

/// Asserts `a` is a problem with `status` and `code`.
#[track_caller]
pub(crate) fn assert_code(a: &Answer, status: u16, code: &str) {
    assert_problem(a, status);
    assert_eq!(a.body["code"], code, "{a:?}");
}

/// Asserts `a` is a 422 whose detail names `field`.
#[track_caller]
pub(crate) fn assert_invalid(a: &Answer, field: &str) {
    assert_problem(a, 422);
    let detail = a.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(field),
        "the detail names {field:?}: {detail:?}"
    );
}

/// A raw JSON body sent with `Content-Type: application/json`.
pub(crate) fn raw_json(
    req: reqwest::RequestBuilder,
    body: impl Into<String>,
) -> reqwest::RequestBuilder {
    req.header("content-type", "application/json")
        .body(body.into())
}

/// A valid ticket with `field` replaced by `value`.
pub(crate) fn ticket_with(field: &str, value: Value) -> Value {
    let mut t = ticket("sv", json!({"refunds": 2}), 5);
    t[field] = value;
    t
}

/// A valid profile with `field` replaced by `value`.
pub(crate) fn profile_with(field: &str, value: Value) -> Value {
    let mut p = profile(&["sv", "en"], json!({"refunds": 4}), 2);
    p[field] = value;
    p
}

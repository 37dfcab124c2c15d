//! The HTTP surface of both services against API.md §1–§4 and `/v1/me` (§7): health, tokens and
//! roles, problem documents, the roster, tickets with idempotency, and the fallbacks.

use e2e::{fetch, profile, spawn_app, ticket, token, AgentClient, Answer, TestApp, SECRET};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a good token for `role`/`sub`.
fn claims(role: &str, sub: &str) -> Value {
    json!({
        "sub": sub,
        "role": role,
        "aud": "dispatch",
        "iat": now(),
        "exp": now() + 3600,
    })
}

/// Signs `claims` with `alg` and `secret`.
fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HMAC signing works")
}

/// RFC 4648 §5 base64url without padding.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for s in sextets.iter().take(chunk.len() + 1) {
            out.push(char::from(ALPHABET[*s as usize]));
        }
    }
    out
}

/// An unsigned `alg: none` token carrying `claims`.
fn unsigned(claims: &Value) -> String {
    let header = b64url(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes());
    let payload = b64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

/// Whether `code` is a snake_case identifier.
fn is_snake_case(code: &str) -> bool {
    !code.is_empty()
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Asserts `a` is an RFC 9457 problem document with `status` and a snake_case `code`.
#[track_caller]
fn assert_problem(a: &Answer, status: u16) {
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
fn assert_code(a: &Answer, status: u16, code: &str) {
    assert_problem(a, status);
    assert_eq!(a.body["code"], code, "{a:?}");
}

/// Asserts `a` is a 422 whose detail names `field`.
#[track_caller]
fn assert_invalid(a: &Answer, field: &str) {
    assert_problem(a, 422);
    let detail = a.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(field),
        "the detail names {field:?}: {detail:?}"
    );
}

/// Which service an endpoint lives on.
#[derive(Debug, Clone, Copy)]
enum Service {
    Dispatcher,
    Gateway,
}

/// One protected endpoint, with the role and subject that may use it and a valid body.
#[derive(Debug, Clone)]
struct Endpoint {
    service: Service,
    method: Method,
    path: String,
    role: &'static str,
    sub: &'static str,
    body: Option<Value>,
}

impl Endpoint {
    fn new(service: Service, method: Method, path: &str, role: &'static str) -> Self {
        Self {
            service,
            method,
            path: path.to_owned(),
            role,
            sub: "tester",
            body: None,
        }
    }

    fn sub(mut self, sub: &'static str) -> Self {
        self.sub = sub;
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// The request, without any `Authorization` header.
    fn request(&self, app: &TestApp) -> reqwest::RequestBuilder {
        let url = match self.service {
            Service::Dispatcher => app.dispatcher(&self.path),
            Service::Gateway => app.gateway(&self.path),
        };
        let req = app.http.request(self.method.clone(), url);
        match &self.body {
            Some(body) => req.json(body),
            None => req,
        }
    }

    /// The claims of a token this endpoint accepts.
    fn claims(&self) -> Value {
        claims(self.role, self.sub)
    }

    fn name(&self) -> String {
        format!("{:?} {} {}", self.service, self.method, self.path)
    }
}

/// Every protected HTTP endpoint of both services.
fn protected() -> Vec<Endpoint> {
    use Service::{Dispatcher, Gateway};
    vec![
        Endpoint::new(Dispatcher, Method::GET, "/v1/agents", "admin"),
        Endpoint::new(Dispatcher, Method::PUT, "/v1/agents/a-auth", "admin").body(profile(
            &["sv"],
            json!({}),
            1,
        )),
        Endpoint::new(Dispatcher, Method::GET, "/v1/agents/a-auth", "admin"),
        Endpoint::new(Dispatcher, Method::DELETE, "/v1/agents/a-auth", "admin"),
        Endpoint::new(Dispatcher, Method::POST, "/v1/tickets", "escalation").body(ticket(
            "sv",
            json!({}),
            5,
        )),
        Endpoint::new(
            Dispatcher,
            Method::GET,
            "/v1/tickets/t-unknown",
            "escalation",
        ),
        Endpoint::new(
            Dispatcher,
            Method::DELETE,
            "/v1/tickets/t-unknown",
            "escalation",
        ),
        Endpoint::new(Gateway, Method::GET, "/v1/me", "agent").sub("a-auth"),
    ]
}

/// Sends every protected endpoint with the `Authorization` header `header(endpoint)` (none if
/// `None`) and asserts each answer is a 401 problem.
async fn assert_all_unauthorized(app: &TestApp, header: impl Fn(&Endpoint) -> Option<String>) {
    for ep in protected() {
        let mut req = ep.request(app);
        if let Some(value) = header(&ep) {
            req = req.header("authorization", value);
        }
        let a = fetch(req).await;
        assert!(a.status == 401, "{}: expected 401, got {a:?}", ep.name());
        assert_problem(&a, 401);
    }
}

/// Sends `ep` with a bearer token for `role`/`sub`.
async fn as_role(app: &TestApp, ep: &Endpoint, role: &str, sub: &str) -> Answer {
    fetch(ep.request(app).bearer_auth(token(role, sub))).await
}

/// A raw JSON body sent with `Content-Type: application/json`.
fn raw_json(req: reqwest::RequestBuilder, body: impl Into<String>) -> reqwest::RequestBuilder {
    req.header("content-type", "application/json")
        .body(body.into())
}

/// `POST /v1/tickets` with a raw body and optional `Idempotency-Key`.
async fn post_raw_ticket(app: &TestApp, body: &str, key: Option<&str>) -> Answer {
    let mut req = raw_json(app.http.post(app.dispatcher("/v1/tickets")), body)
        .bearer_auth(token("escalation", "engine"));
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    fetch(req).await
}

/// A valid ticket with `field` replaced by `value`.
fn ticket_with(field: &str, value: Value) -> Value {
    let mut t = ticket("sv", json!({"refunds": 2}), 5);
    t[field] = value;
    t
}

/// A valid profile with `field` replaced by `value`.
fn profile_with(field: &str, value: Value) -> Value {
    let mut p = profile(&["sv", "en"], json!({"refunds": 4}), 2);
    p[field] = value;
    p
}

/// PUTs `body` for a fresh agent, asserts a 422 naming `field`, and that nothing was stored.
async fn assert_profile_rejected(app: &TestApp, body: &Value, field: &str) {
    let id = format!("a-{}", uuid::Uuid::new_v4().simple());
    let a = app.put_agent(&id, body).await;
    assert_invalid(&a, field);
    assert_eq!(
        app.get_agent(&id).await.status,
        404,
        "a rejected profile is not stored: {body}"
    );
}

/// Posts `body`, asserting a 422 naming `field`.
async fn assert_ticket_rejected(app: &TestApp, body: &Value, field: &str) {
    let a = app.post_ticket(body).await;
    assert_invalid(&a, field);
}

fn ids_of(list: &Answer) -> Vec<String> {
    let mut ids: Vec<String> = list.body["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("the list is {{\"agents\": [...]}}: {list:?}"))
        .iter()
        .map(|a| a["agent_id"].as_str().expect("agent_id").to_owned())
        .collect();
    ids.sort();
    ids
}

async fn list_agents(app: &TestApp, query: &str) -> Answer {
    app.send(
        app.http.get(app.dispatcher(&format!("/v1/agents{query}"))),
        "admin",
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn healthz_answers_200_on_both_services_without_a_token() {
    let app = spawn_app().await;
    for url in [app.dispatcher("/healthz"), app.gateway("/healthz")] {
        let a = fetch(app.http.get(&url)).await;
        assert_eq!(a.status, 200, "{url}: {a:?}");
    }
}

#[tokio::test]
async fn readyz_answers_200_on_both_services_without_a_token_while_redis_answers() {
    let app = spawn_app().await;
    for url in [app.dispatcher("/readyz"), app.gateway("/readyz")] {
        let a = fetch(app.http.get(&url)).await;
        assert_eq!(a.status, 200, "{url}: {a:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_protected_endpoint_refuses_a_request_without_a_token_with_401() {
    let app = spawn_app().await;
    assert_all_unauthorized(&app, |_| None).await;
}

#[tokio::test]
async fn every_protected_endpoint_refuses_a_malformed_authorization_header_with_401() {
    let app = spawn_app().await;
    let good = token("admin", "tester");
    for header in [
        format!("Token {good}"),
        format!("Basic {good}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        good.clone(),
        "Bearer not-a-jwt".to_owned(),
        "Bearer a.b.c".to_owned(),
        "Bearer ....".to_owned(),
    ] {
        let a = fetch(
            app.http
                .get(app.dispatcher("/v1/agents"))
                .header("authorization", &header),
        )
        .await;
        assert!(a.status == 401, "{header:?}: expected 401, got {a:?}");
        assert_problem(&a, 401);
    }
    assert_all_unauthorized(&app, |_| Some("Bearer not.a.token".to_owned())).await;
}

#[tokio::test]
async fn every_protected_endpoint_refuses_a_token_expired_beyond_the_leeway_with_401() {
    let app = spawn_app().await;
    assert_all_unauthorized(&app, |ep| {
        let mut c = ep.claims();
        c["iat"] = json!(now() - 3600);
        c["exp"] = json!(now() - 45);
        Some(format!("Bearer {}", sign(Algorithm::HS256, SECRET, &c)))
    })
    .await;
}

#[tokio::test]
async fn a_token_expired_within_the_30_second_leeway_is_accepted() {
    let app = spawn_app().await;
    let recent = |role: &str, sub: &str| {
        let mut c = claims(role, sub);
        c["iat"] = json!(now() - 600);
        c["exp"] = json!(now() - 10);
        sign(Algorithm::HS256, SECRET, &c)
    };
    let a = fetch(
        app.http
            .put(app.dispatcher("/v1/agents/a-leeway"))
            .bearer_auth(recent("admin", "ops"))
            .json(&profile(&["sv"], json!({}), 1)),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = fetch(
        app.http
            .get(app.dispatcher("/v1/agents"))
            .bearer_auth(recent("admin", "ops")),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = fetch(
        app.http
            .post(app.dispatcher("/v1/tickets"))
            .bearer_auth(recent("escalation", "engine"))
            .json(&ticket("sv", json!({}), 5)),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app.get_me(&recent("agent", "a-leeway")).await;
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test]
async fn every_protected_endpoint_refuses_a_token_for_another_audience_with_401() {
    let app = spawn_app().await;
    assert_all_unauthorized(&app, |ep| {
        let mut c = ep.claims();
        c["aud"] = json!("someone-else");
        Some(format!("Bearer {}", sign(Algorithm::HS256, SECRET, &c)))
    })
    .await;
}

#[tokio::test]
async fn every_protected_endpoint_refuses_a_token_signed_with_another_secret_with_401() {
    let app = spawn_app().await;
    assert_all_unauthorized(&app, |ep| {
        Some(format!(
            "Bearer {}",
            sign(Algorithm::HS256, "not-the-secret", &ep.claims())
        ))
    })
    .await;
}

#[tokio::test]
async fn every_protected_endpoint_refuses_an_unsigned_alg_none_token_with_401() {
    let app = spawn_app().await;
    assert_all_unauthorized(&app, |ep| {
        Some(format!("Bearer {}", unsigned(&ep.claims())))
    })
    .await;
}

#[tokio::test]
async fn every_protected_endpoint_refuses_an_hs512_token_with_401() {
    let app = spawn_app().await;
    assert_all_unauthorized(&app, |ep| {
        Some(format!(
            "Bearer {}",
            sign(Algorithm::HS512, SECRET, &ep.claims())
        ))
    })
    .await;
}

#[tokio::test]
async fn every_protected_endpoint_refuses_a_token_not_yet_valid_by_nbf_with_401() {
    let app = spawn_app().await;
    assert_all_unauthorized(&app, |ep| {
        let mut c = ep.claims();
        c["nbf"] = json!(now() + 45);
        Some(format!("Bearer {}", sign(Algorithm::HS256, SECRET, &c)))
    })
    .await;
}

#[tokio::test]
async fn every_protected_endpoint_refuses_a_token_lacking_a_required_claim_with_401() {
    let app = spawn_app().await;
    for missing in ["sub", "role", "exp"] {
        assert_all_unauthorized(&app, |ep| {
            let mut c = ep.claims();
            c.as_object_mut().expect("claims object").remove(missing);
            Some(format!("Bearer {}", sign(Algorithm::HS256, SECRET, &c)))
        })
        .await;
    }
}

#[tokio::test]
async fn a_request_refused_for_its_token_changes_nothing() {
    let app = spawn_app().await;
    let expired = {
        let mut c = claims("admin", "ops");
        c["exp"] = json!(now() - 120);
        sign(Algorithm::HS256, SECRET, &c)
    };
    let a = fetch(
        app.http
            .put(app.dispatcher("/v1/agents/a-sneaky"))
            .bearer_auth(&expired)
            .json(&profile(&["sv"], json!({}), 1)),
    )
    .await;
    assert_problem(&a, 401);
    assert_eq!(app.get_agent("a-sneaky").await.status, 404);
}

#[tokio::test]
async fn the_agent_websocket_handshake_refuses_an_expired_token_with_401() {
    let app = spawn_app().await;
    app.put_agent("a-ws", &profile(&["sv"], json!({}), 1)).await;
    let mut c = claims("agent", "a-ws");
    c["exp"] = json!(now() - 120);
    let expired = sign(Algorithm::HS256, SECRET, &c);
    let refused = AgentClient::try_connect(&app.gateways[0], "a-ws", &expired, None).await;
    assert_eq!(refused.err(), Some(401));
}

#[tokio::test]
async fn an_agent_token_on_tickets_is_forbidden_with_403() {
    let app = spawn_app().await;
    let ep = &protected()[4];
    assert_eq!(ep.path, "/v1/tickets");
    let a = as_role(&app, ep, "agent", "a-1").await;
    assert_code(&a, 403, "forbidden");
}

#[tokio::test]
async fn a_payroll_token_on_tickets_is_forbidden_with_403() {
    let app = spawn_app().await;
    for ep in protected()
        .iter()
        .filter(|e| e.path.starts_with("/v1/tickets"))
    {
        let a = as_role(&app, ep, "payroll", "payroll-svc").await;
        assert!(a.status == 403, "{}: {a:?}", ep.name());
        assert_code(&a, 403, "forbidden");
    }
}

#[tokio::test]
async fn an_escalation_token_on_the_roster_is_forbidden_with_403() {
    let app = spawn_app().await;
    for ep in protected()
        .iter()
        .filter(|e| e.path.starts_with("/v1/agents"))
    {
        let a = as_role(&app, ep, "escalation", "engine").await;
        assert!(a.status == 403, "{}: {a:?}", ep.name());
        assert_code(&a, 403, "forbidden");
    }
    assert_eq!(
        app.get_agent("a-auth").await.status,
        404,
        "a forbidden PUT stores nothing"
    );
}

#[tokio::test]
async fn agent_and_payroll_tokens_on_the_roster_are_forbidden_with_403() {
    let app = spawn_app().await;
    for ep in protected()
        .iter()
        .filter(|e| e.path.starts_with("/v1/agents"))
    {
        for role in ["agent", "payroll"] {
            let a = as_role(&app, ep, role, "a-auth").await;
            assert!(a.status == 403, "{role} on {}: {a:?}", ep.name());
            assert_code(&a, 403, "forbidden");
        }
    }
}

#[tokio::test]
async fn a_token_with_an_unknown_role_is_forbidden_with_403() {
    let app = spawn_app().await;
    let a = fetch(
        app.http
            .get(app.dispatcher("/v1/agents"))
            .bearer_auth(token("superuser", "ops")),
    )
    .await;
    assert_code(&a, 403, "forbidden");
}

#[tokio::test]
async fn an_admin_may_post_read_and_cancel_tickets() {
    let app = spawn_app().await;
    let admin = token("admin", "ops");
    let a = fetch(
        app.http
            .post(app.dispatcher("/v1/tickets"))
            .bearer_auth(&admin)
            .json(&ticket("sv", json!({}), 5)),
    )
    .await;
    assert_eq!(a.status, 201, "{a:?}");
    let id = a.body["ticket_id"].as_str().expect("ticket_id").to_owned();
    let a = fetch(
        app.http
            .get(app.dispatcher(&format!("/v1/tickets/{id}")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = fetch(
        app.http
            .delete(app.dispatcher(&format!("/v1/tickets/{id}")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["status"], "cancelled");
}

// ---------------------------------------------------------------------------------------------
// Problem documents, and no 500 for bad input
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_bad_input_gets_a_500_and_every_error_is_a_problem_document() {
    let app = spawn_app().await;
    let admin = token("admin", "ops");
    let engine = token("escalation", "engine");
    let put = |id: &str| {
        app.http
            .put(app.dispatcher(&format!("/v1/agents/{id}")))
            .bearer_auth(&admin)
    };
    let post = || {
        app.http
            .post(app.dispatcher("/v1/tickets"))
            .bearer_auth(&engine)
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_ticket = r#"{"conversation_id":"c","language":"sv","summary":"s","priority":1e20}"#;
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("ticket body null", raw_json(post(), "null")),
        ("ticket body array", raw_json(post(), "[]")),
        ("ticket body string", raw_json(post(), "\"ticket\"")),
        ("ticket body number out of range", raw_json(post(), "1e999")),
        ("ticket body empty", raw_json(post(), "")),
        ("ticket body deeply nested", raw_json(post(), deep.clone())),
        ("ticket body nested in context", {
            let body = format!(
                r#"{{"conversation_id":"c","language":"sv","summary":"s","context":{{"x":{deep}}}}}"#
            );
            raw_json(post(), body)
        }),
        (
            "ticket body not UTF-8",
            post()
                .header("content-type", "application/json")
                .body(vec![0xff_u8, 0xfe, 0x7b, 0x7d]),
        ),
        ("ticket priority 1e20", raw_json(post(), huge_ticket)),
        (
            "ticket priority -1",
            post().json(&ticket_with("priority", json!(-1))),
        ),
        (
            "ticket priority 1.5",
            post().json(&ticket_with("priority", json!(1.5))),
        ),
        (
            "ticket priority \"5\"",
            post().json(&ticket_with("priority", json!("5"))),
        ),
        (
            "ticket priority null",
            post().json(&ticket_with("priority", Value::Null)),
        ),
        (
            "ticket skills level 0",
            post().json(&ticket_with("skills", json!({"refunds": 0}))),
        ),
        (
            "ticket skills array",
            post().json(&ticket_with("skills", json!(["refunds"]))),
        ),
        (
            "ticket language number",
            post().json(&ticket_with("language", json!(7))),
        ),
        (
            "ticket Idempotency-Key not visible ASCII",
            post()
                .header(
                    "idempotency-key",
                    reqwest::header::HeaderValue::from_bytes(&[0x6b, 0xff, 0x79])
                        .expect("obs-text is a valid header value"),
                )
                .json(&ticket("sv", json!({}), 5)),
        ),
        (
            "ticket content type charset garbage",
            post()
                .header("content-type", "application/json; charset=nonsense")
                .body("{"),
        ),
        (
            "profile max_concurrent 1e3",
            put("a-x").json(&profile_with("max_concurrent", json!(1000))),
        ),
        (
            "profile hourly_rate_cents beyond u32",
            put("a-x").json(&profile_with(
                "hourly_rate_cents",
                json!(99_999_999_999_u64),
            )),
        ),
        (
            "profile hourly_rate_cents u64 max",
            put("a-x").json(&profile_with("hourly_rate_cents", json!(u64::MAX))),
        ),
        (
            "profile lat as string",
            put("a-x").json(&profile_with("location", json!({"lat": "NaN", "lon": 0}))),
        ),
        (
            "profile location without lon",
            put("a-x").json(&profile_with("location", json!({"lat": 10}))),
        ),
        (
            "profile lat 1e400",
            raw_json(
                put("a-x"),
                r#"{"display_name":"x","languages":["sv"],"location":{"lat":1e400,"lon":0}}"#,
            ),
        ),
        (
            "profile languages not an array",
            put("a-x").json(&profile_with("languages", json!("sv"))),
        ),
        (
            "profile display_name whitespace",
            put("a-x").json(&profile_with("display_name", json!("   "))),
        ),
        (
            "profile id 1000 chars",
            put(&"a".repeat(1000)).json(&profile(&["sv"], json!({}), 1)),
        ),
        (
            "profile id percent-encoded invalid UTF-8",
            put("%FF%FE").json(&profile(&["sv"], json!({}), 1)),
        ),
        (
            "get agent id percent-encoded invalid UTF-8",
            app.http
                .get(app.dispatcher("/v1/agents/%FF"))
                .bearer_auth(&admin),
        ),
        (
            "get ticket id percent-encoded invalid UTF-8",
            app.http
                .get(app.dispatcher("/v1/tickets/%C3%28"))
                .bearer_auth(&engine),
        ),
        (
            "list with an empty status",
            app.http
                .get(app.dispatcher("/v1/agents?status="))
                .bearer_auth(&admin),
        ),
        (
            "list with a percent-encoded invalid UTF-8 status",
            app.http
                .get(app.dispatcher("/v1/agents?status=%FF"))
                .bearer_auth(&admin),
        ),
        (
            "authorization header not visible ASCII",
            app.http.get(app.dispatcher("/v1/agents")).header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe")
                    .expect("obs-text is a valid header value"),
            ),
        ),
        (
            "authorization token of 6 KiB",
            app.http
                .get(app.dispatcher("/v1/agents"))
                .bearer_auth("a".repeat(6 * 1024)),
        ),
    ];
    let mut failures = Vec::new();
    for (name, req) in cases {
        let a = fetch(req).await;
        let problem_ok = a.content_type.starts_with("application/problem+json")
            && ["type", "title", "detail", "code"]
                .iter()
                .all(|f| a.body[*f].is_string())
            && a.body["status"] == a.status
            && is_snake_case(a.body["code"].as_str().unwrap_or_default());
        if !(400..500).contains(&a.status) || !problem_ok {
            failures.push(format!("{name}: {a:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "bad inputs must get a 4xx problem document:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Roster
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn put_creates_an_agent_with_201_and_returns_the_profile_with_its_id_and_state() {
    let app = spawn_app().await;
    let body = json!({
        "display_name": "Astrid L.",
        "skills": {"refunds": 4, "disputes": 2},
        "languages": ["sv", "en"],
        "max_concurrent": 2,
        "location": {"lat": 63.8258, "lon": 20.2630},
        "timezone": "Europe/Stockholm",
        "hourly_rate_cents": 1650,
        "currency": "EUR"
    });
    let a = app.put_agent("a-17", &body).await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["agent_id"], "a-17");
    for (k, v) in body.as_object().expect("object") {
        assert_eq!(&a.body[k], v, "field {k} echoed: {a:?}");
    }
    assert_eq!(a.body["state"]["status"], "offline", "{a:?}");
    assert_eq!(a.body["state"]["connected"], false, "{a:?}");
}

#[tokio::test]
async fn put_on_an_existing_agent_replaces_the_profile_with_200() {
    let app = spawn_app().await;
    let first = profile(&["sv"], json!({"refunds": 2}), 1);
    assert_eq!(app.put_agent("a-17", &first).await.status, 201);
    let second = json!({
        "display_name": "Astrid Lindqvist",
        "skills": {"disputes": 5},
        "languages": ["en", "de"],
        "max_concurrent": 3,
        "timezone": "Europe/Berlin",
        "hourly_rate_cents": 2000,
        "currency": "SEK"
    });
    let a = app.put_agent("a-17", &second).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["agent_id"], "a-17");
    for (k, v) in second.as_object().expect("object") {
        assert_eq!(&a.body[k], v, "field {k} replaced: {a:?}");
    }
    assert!(a.body["state"].is_object(), "{a:?}");
    let got = app.get_agent("a-17").await;
    assert_eq!(
        got.body["skills"],
        json!({"disputes": 5}),
        "replaced, not merged"
    );
    assert_eq!(got.body["display_name"], "Astrid Lindqvist");
}

#[tokio::test]
async fn get_returns_the_profile_and_an_offline_state_for_a_new_agent() {
    let app = spawn_app().await;
    let body = profile(&["sv", "en"], json!({"refunds": 4}), 2);
    app.put_agent("a-17", &body).await;
    let a = app.get_agent("a-17").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["agent_id"], "a-17");
    for (k, v) in body.as_object().expect("object") {
        assert_eq!(&a.body[k], v, "field {k}: {a:?}");
    }
    let state = &a.body["state"];
    assert_eq!(state["status"], "offline", "{a:?}");
    assert_eq!(state["connected"], false, "{a:?}");
    assert_eq!(state["active_tickets"], json!([]), "{a:?}");
    assert!(state.get("shift_id").is_some_and(Value::is_null), "{a:?}");
    let last_seen = state.get("last_seen_at").expect("state has last_seen_at");
    assert!(
        last_seen.is_null()
            || last_seen
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "last_seen_at is null or RFC 3339: {last_seen}"
    );
}

#[tokio::test]
async fn the_list_returns_every_agent_under_agents() {
    let app = spawn_app().await;
    app.put_agent("a-1", &profile(&["sv"], json!({}), 1)).await;
    app.put_agent("a-2", &profile(&["en"], json!({}), 1)).await;
    let a = list_agents(&app, "").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(ids_of(&a), ["a-1", "a-2"]);
    let first = a.body["agents"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["agent_id"] == "a-1"))
        .expect("a-1 listed");
    assert_eq!(first["languages"], json!(["sv"]));
    assert_eq!(first["state"]["status"], "offline");
}

#[tokio::test]
async fn the_list_filters_by_status() {
    let app = spawn_app().await;
    app.put_agent("a-off", &profile(&["sv"], json!({}), 1))
        .await;
    let _online = app
        .available_agent("a-on", &profile(&["sv"], json!({}), 1))
        .await;
    let off = list_agents(&app, "?status=offline").await;
    assert_eq!(off.status, 200, "{off:?}");
    assert_eq!(ids_of(&off), ["a-off"]);
    let on = list_agents(&app, "?status=available").await;
    assert_eq!(on.status, 200, "{on:?}");
    assert_eq!(ids_of(&on), ["a-on"]);
    assert_eq!(on.body["agents"][0]["state"]["connected"], true);
    let on_break = list_agents(&app, "?status=break").await;
    assert_eq!(on_break.status, 200, "{on_break:?}");
    assert!(ids_of(&on_break).is_empty());
}

#[tokio::test]
async fn the_list_refuses_an_unknown_status_with_400() {
    let app = spawn_app().await;
    let a = list_agents(&app, "?status=bogus").await;
    assert_problem(&a, 400);
}

#[tokio::test]
async fn delete_removes_an_agent_with_204_and_it_is_then_404() {
    let app = spawn_app().await;
    app.put_agent("a-17", &profile(&["sv"], json!({}), 1)).await;
    let a = app.delete_agent("a-17").await;
    assert_eq!(a.status, 204, "{a:?}");
    let a = app.get_agent("a-17").await;
    assert_problem(&a, 404);
    assert!(ids_of(&list_agents(&app, "").await).is_empty());
}

#[tokio::test]
async fn delete_of_an_unknown_agent_is_404() {
    let app = spawn_app().await;
    let a = app.delete_agent("a-nobody").await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn get_of_an_unknown_agent_is_404() {
    let app = spawn_app().await;
    let a = app.get_agent("a-nobody").await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn an_invalid_agent_id_in_the_path_is_422_naming_agent_id() {
    let app = spawn_app().await;
    let body = profile(&["sv"], json!({}), 1);
    for id in [
        "a".repeat(65),
        "a%20b".to_owned(),
        "a%2Fb".to_owned(),
        "%C3%A5".to_owned(),
    ] {
        let a = app.put_agent(&id, &body).await;
        assert_invalid(&a, "agent_id");
        let a = app.get_agent(&id).await;
        assert_invalid(&a, "agent_id");
        let a = app.delete_agent(&id).await;
        assert_invalid(&a, "agent_id");
    }
    let a = app.put_agent(&"a".repeat(64), &body).await;
    assert_eq!(a.status, 201, "64 characters is a valid id: {a:?}");
}

#[tokio::test]
async fn a_display_name_empty_or_over_100_characters_is_422() {
    let app = spawn_app().await;
    for name in [String::new(), "x".repeat(101)] {
        let body = profile_with("display_name", json!(name));
        assert_profile_rejected(&app, &body, "display_name").await;
    }
    let ok = profile_with("display_name", json!("é".repeat(100)));
    assert_eq!(app.put_agent("a-100", &ok).await.status, 201);
}

#[tokio::test]
async fn languages_empty_unknown_or_uppercase_are_422() {
    let app = spawn_app().await;
    for langs in [json!([]), json!(["xx"]), json!(["SV"])] {
        let body = profile_with("languages", langs);
        assert_profile_rejected(&app, &body, "languages").await;
    }
}

#[tokio::test]
async fn max_concurrent_outside_1_to_10_is_422() {
    let app = spawn_app().await;
    for n in [0, 11] {
        let body = profile_with("max_concurrent", json!(n));
        assert_profile_rejected(&app, &body, "max_concurrent").await;
    }
}

#[tokio::test]
async fn a_skill_with_an_invalid_name_or_a_level_outside_1_to_5_is_422() {
    let app = spawn_app().await;
    for skills in [
        json!({"Refunds": 1}),
        json!({"refunds": 6}),
        json!({"refunds": 0}),
    ] {
        let body = profile_with("skills", skills);
        assert_profile_rejected(&app, &body, "skills").await;
    }
}

#[tokio::test]
async fn a_latitude_outside_90_degrees_is_422() {
    let app = spawn_app().await;
    let body = profile_with("location", json!({"lat": 91.0, "lon": 20.0}));
    assert_profile_rejected(&app, &body, "location").await;
    let body = profile_with("location", json!({"lat": 10.0, "lon": -180.5}));
    assert_profile_rejected(&app, &body, "location").await;
}

#[tokio::test]
async fn a_timezone_that_is_not_an_iana_name_is_422() {
    let app = spawn_app().await;
    let body = profile_with("timezone", json!("Mars/Base"));
    assert_profile_rejected(&app, &body, "timezone").await;
}

#[tokio::test]
async fn a_negative_hourly_rate_is_422() {
    let app = spawn_app().await;
    let body = profile_with("hourly_rate_cents", json!(-1));
    assert_profile_rejected(&app, &body, "hourly_rate_cents").await;
}

#[tokio::test]
async fn a_currency_that_is_not_iso_4217_is_422() {
    let app = spawn_app().await;
    for currency in ["eur", "EURO", "XYZ"] {
        let body = profile_with("currency", json!(currency));
        assert_profile_rejected(&app, &body, "currency").await;
    }
}

#[tokio::test]
async fn an_unknown_profile_field_is_422_naming_it() {
    let app = spawn_app().await;
    let body = profile_with("colour", json!("red"));
    assert_profile_rejected(&app, &body, "colour").await;
}

#[tokio::test]
async fn a_profile_field_of_the_wrong_json_type_is_422_naming_it() {
    let app = spawn_app().await;
    let body = profile_with("max_concurrent", json!("two"));
    assert_profile_rejected(&app, &body, "max_concurrent").await;
}

#[tokio::test]
async fn a_profile_with_malformed_json_is_400() {
    let app = spawn_app().await;
    let a = app
        .send(
            raw_json(
                app.http.put(app.dispatcher("/v1/agents/a-1")),
                r#"{"display_name": "x", "languages": ["sv"]"#,
            ),
            "admin",
        )
        .await;
    assert_code(&a, 400, "malformed_json");
    assert_eq!(app.get_agent("a-1").await.status, 404);
}

#[tokio::test]
async fn a_profile_that_is_not_json_is_415() {
    let app = spawn_app().await;
    let body = profile(&["sv"], json!({}), 1).to_string();
    let a = app
        .send(
            app.http
                .put(app.dispatcher("/v1/agents/a-1"))
                .header("content-type", "text/plain")
                .body(body.clone()),
            "admin",
        )
        .await;
    assert_problem(&a, 415);
    let a = app
        .send(
            app.http.put(app.dispatcher("/v1/agents/a-1")).body(body),
            "admin",
        )
        .await;
    assert_problem(&a, 415);
    assert_eq!(app.get_agent("a-1").await.status, 404);
}

#[tokio::test]
async fn a_profile_body_over_128_kib_is_413() {
    let app = spawn_app().await;
    let body = profile_with("display_name", json!("x".repeat(129 * 1024)));
    let a = app.put_agent("a-1", &body).await;
    assert_problem(&a, 413);
}

// ---------------------------------------------------------------------------------------------
// Tickets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_posted_ticket_is_201_queued_with_every_field_of_the_contract() {
    let app = spawn_app().await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let body = json!({
        "conversation_id": "conv-8812",
        "language": "sv",
        "skills": {"refunds": 3},
        "priority": 7,
        "region": "north",
        "preferred_agent_id": "a-17",
        "summary": "Double charge on order 5521, customer asks for a refund",
        "context": {"transcript_url": "https://example.com/t/1", "customer_tier": "gold"}
    });
    let a = app.post_ticket(&body).await;
    assert_eq!(a.status, 201, "{a:?}");
    let t = &a.body;
    assert!(
        t["ticket_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{t}"
    );
    assert_eq!(t["conversation_id"], "conv-8812");
    assert_eq!(t["status"], "queued");
    assert_eq!(t["priority"], 7);
    assert_eq!(t["language"], "sv");
    assert_eq!(t["skills"], json!({"refunds": 3}));
    assert_eq!(t["region"], "north");
    assert_eq!(t["offers_made"], 0);
    for absent in [
        "agent_id",
        "assigned_at",
        "completed_at",
        "cancelled_at",
        "outcome",
    ] {
        assert!(
            t.get(absent).is_some_and(Value::is_null),
            "{absent} is present and null: {t}"
        );
    }
    let created = t["created_at"].as_str().expect("created_at is a string");
    let created = chrono::DateTime::parse_from_rfc3339(created).expect("created_at is RFC 3339");
    assert_eq!(created.offset().local_minus_utc(), 0, "UTC");
    assert!(created >= before && created <= chrono::Utc::now() + chrono::Duration::seconds(5));
    let id = t["ticket_id"].as_str().expect("ticket_id");
    let got = app.get_ticket(id).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(&got.body, t, "GET shows what POST returned");
}

#[tokio::test]
async fn a_ticket_without_a_priority_gets_priority_5() {
    let app = spawn_app().await;
    let a = app
        .post_ticket(&json!({"conversation_id": "c-1", "language": "en", "summary": "help"}))
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["priority"], 5);
    assert_eq!(a.body["skills"], json!({}));
    assert!(a.body["region"].is_null());
}

#[tokio::test]
async fn a_ticket_without_a_language_is_422() {
    let app = spawn_app().await;
    let mut body = ticket("sv", json!({}), 5);
    body.as_object_mut().expect("object").remove("language");
    assert_ticket_rejected(&app, &body, "language").await;
}

#[tokio::test]
async fn a_ticket_summary_over_500_characters_is_422() {
    let app = spawn_app().await;
    assert_ticket_rejected(
        &app,
        &ticket_with("summary", json!("s".repeat(501))),
        "summary",
    )
    .await;
    assert_ticket_rejected(&app, &ticket_with("summary", json!("")), "summary").await;
    let ok = app
        .post_ticket(&ticket_with("summary", json!("ö".repeat(500))))
        .await;
    assert_eq!(ok.status, 201, "500 characters is fine: {ok:?}");
}

#[tokio::test]
async fn a_conversation_id_over_128_characters_is_422() {
    let app = spawn_app().await;
    let body = ticket_with("conversation_id", json!("c".repeat(129)));
    assert_ticket_rejected(&app, &body, "conversation_id").await;
    let ok = app
        .post_ticket(&ticket_with("conversation_id", json!("c".repeat(128))))
        .await;
    assert_eq!(ok.status, 201, "128 characters is fine: {ok:?}");
}

#[tokio::test]
async fn a_priority_outside_0_to_9_is_422() {
    let app = spawn_app().await;
    assert_ticket_rejected(&app, &ticket_with("priority", json!(10)), "priority").await;
    let ok = app.post_ticket(&ticket_with("priority", json!(0))).await;
    assert_eq!(ok.status, 201, "{ok:?}");
}

#[tokio::test]
async fn an_unknown_region_is_422() {
    let app = spawn_app().await;
    assert_ticket_rejected(&app, &ticket_with("region", json!("atlantis")), "region").await;
}

#[tokio::test]
async fn a_context_that_is_not_an_object_is_422() {
    let app = spawn_app().await;
    for context in [json!([1, 2]), json!("gold"), json!(42)] {
        assert_ticket_rejected(&app, &ticket_with("context", context), "context").await;
    }
}

#[tokio::test]
async fn a_context_over_64_kib_in_a_body_under_128_kib_is_422() {
    let app = spawn_app().await;
    let body = ticket_with("context", json!({"blob": "x".repeat(70 * 1024)}));
    assert!(body.to_string().len() < 128 * 1024);
    assert_ticket_rejected(&app, &body, "context").await;
}

#[tokio::test]
async fn an_invalid_preferred_agent_id_is_422() {
    let app = spawn_app().await;
    for id in [json!("a b"), json!("a".repeat(65)), json!("")] {
        let body = ticket_with("preferred_agent_id", id);
        assert_ticket_rejected(&app, &body, "preferred_agent_id").await;
    }
}

#[tokio::test]
async fn a_ticket_body_over_128_kib_is_413() {
    let app = spawn_app().await;
    let body = ticket_with("context", json!({"blob": "x".repeat(130 * 1024)}));
    let a = app.post_ticket(&body).await;
    assert_problem(&a, 413);
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_and_body_returns_the_first_ticket_with_200() {
    let app = spawn_app().await;
    let first = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help","skills":{"refunds":2,"disputes":1},"priority":7}"#;
    let a = post_raw_ticket(&app, first, Some("key-1")).await;
    assert_eq!(a.status, 201, "{a:?}");
    let id = a.body["ticket_id"].as_str().expect("ticket_id").to_owned();
    let again = post_raw_ticket(&app, first, Some("key-1")).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["ticket_id"], id.as_str());
    assert_eq!(again.body["conversation_id"], "conv-idem");
}

#[tokio::test]
async fn an_idempotent_retry_matches_its_body_whatever_the_key_order() {
    let app = spawn_app().await;
    let first = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help","skills":{"refunds":2,"disputes":1},"priority":7}"#;
    let reordered = r#"{ "priority": 7, "skills": {"disputes": 1, "refunds": 2}, "summary": "help", "language": "sv", "conversation_id": "conv-idem" }"#;
    let a = post_raw_ticket(&app, first, Some("key-order")).await;
    assert_eq!(a.status, 201, "{a:?}");
    let again = post_raw_ticket(&app, reordered, Some("key-order")).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["ticket_id"], a.body["ticket_id"]);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_422_idempotency_key_reused() {
    let app = spawn_app().await;
    let first = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help"}"#;
    let other = r#"{"conversation_id":"conv-idem","language":"sv","summary":"other help"}"#;
    let a = post_raw_ticket(&app, first, Some("key-2")).await;
    assert_eq!(a.status, 201, "{a:?}");
    let b = post_raw_ticket(&app, other, Some("key-2")).await;
    assert_code(&b, 422, "idempotency_key_reused");
}

#[tokio::test]
async fn another_idempotency_key_creates_another_ticket() {
    let app = spawn_app().await;
    let body = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help"}"#;
    let a = post_raw_ticket(&app, body, Some("key-a")).await;
    let b = post_raw_ticket(&app, body, Some("key-b")).await;
    let c = post_raw_ticket(&app, body, None).await;
    assert_eq!(
        (a.status, b.status, c.status),
        (201, 201, 201),
        "{a:?} {b:?} {c:?}"
    );
    let ids = [&a, &b, &c].map(|x| x.body["ticket_id"].as_str().expect("id").to_owned());
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[2]);
}

#[tokio::test]
async fn an_idempotency_key_over_255_characters_is_422() {
    let app = spawn_app().await;
    let body = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help"}"#;
    let a = post_raw_ticket(&app, body, Some(&"k".repeat(256))).await;
    assert_invalid(&a, "Idempotency-Key");
    let ok = post_raw_ticket(&app, body, Some(&"k".repeat(255))).await;
    assert_eq!(ok.status, 201, "255 characters is fine: {ok:?}");
}

#[tokio::test]
async fn get_of_an_unknown_ticket_is_404() {
    let app = spawn_app().await;
    let a = app.get_ticket("t-unknown").await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn delete_of_an_unknown_ticket_is_404() {
    let app = spawn_app().await;
    let a = app.cancel_ticket("t-unknown").await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn an_invalid_ticket_id_in_the_path_is_422_naming_ticket_id() {
    let app = spawn_app().await;
    for id in ["t".repeat(65), "t%20x".to_owned()] {
        assert_invalid(&app.get_ticket(&id).await, "ticket_id");
        assert_invalid(&app.cancel_ticket(&id).await, "ticket_id");
    }
}

// ---------------------------------------------------------------------------------------------
// Fallbacks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_route_is_a_404_problem_on_both_services() {
    let app = spawn_app().await;
    for url in [
        app.dispatcher("/v1/nothing-here"),
        app.dispatcher("/v2/tickets"),
        app.gateway("/v1/nothing-here"),
    ] {
        let a = app.send(app.http.get(&url), "admin").await;
        assert!(a.status == 404, "{url}: {a:?}");
        assert_problem(&a, 404);
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_a_405_problem() {
    let app = spawn_app().await;
    let cases = [
        (Method::PATCH, app.dispatcher("/v1/tickets")),
        (Method::GET, app.dispatcher("/v1/tickets")),
        (Method::POST, app.dispatcher("/v1/agents")),
        (Method::PATCH, app.dispatcher("/v1/agents/a-1")),
        (Method::PUT, app.dispatcher("/v1/tickets/t-1")),
        (Method::POST, app.gateway("/v1/me")),
    ];
    for (method, url) in cases {
        let a = app
            .send(app.http.request(method.clone(), &url), "admin")
            .await;
        assert!(a.status == 405, "{method} {url}: {a:?}");
        assert_problem(&a, 405);
    }
}

// ---------------------------------------------------------------------------------------------
// /v1/me
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn me_returns_the_agents_own_profile_and_state() {
    let app = spawn_app().await;
    let body = profile(&["sv", "en"], json!({"refunds": 4}), 2);
    app.put_agent("a-17", &body).await;
    app.put_agent("a-18", &profile(&["de"], json!({}), 1)).await;
    let a = app.get_me(&token("agent", "a-17")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["agent_id"], "a-17");
    for (k, v) in body.as_object().expect("object") {
        assert_eq!(&a.body[k], v, "field {k}: {a:?}");
    }
    assert_eq!(a.body["state"]["status"], "offline");
    assert_eq!(a.body["state"]["connected"], false);
    assert_eq!(a.body["state"]["active_tickets"], json!([]));
}

#[tokio::test]
async fn me_with_an_admin_token_is_403() {
    let app = spawn_app().await;
    app.put_agent("a-17", &profile(&["sv"], json!({}), 1)).await;
    for role in ["admin", "escalation", "payroll"] {
        let a = app.get_me(&token(role, "a-17")).await;
        assert!(a.status == 403, "{role}: {a:?}");
        assert_problem(&a, 403);
    }
}

#[tokio::test]
async fn me_for_an_agent_not_on_the_roster_is_404() {
    let app = spawn_app().await;
    let a = app.get_me(&token("agent", "a-ghost")).await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn me_without_a_token_is_401() {
    let app = spawn_app().await;
    let a = app.get_me("").await;
    assert_problem(&a, 401);
}

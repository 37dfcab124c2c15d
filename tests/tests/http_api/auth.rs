//! Tokens and roles on every protected endpoint: missing, malformed, expired, foreign, unsigned or
//! incomplete tokens are 401; tokens of the wrong role are 403.

use e2e::{fetch, profile, spawn_app, ticket, token, AgentClient, Answer, TestApp, SECRET};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{assert_code, assert_problem};

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

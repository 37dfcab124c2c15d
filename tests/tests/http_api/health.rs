//! `/healthz` and `/readyz` on both services, and the fallbacks: an unknown route is a 404 and
//! a wrong method a 405, both as problem documents.

use e2e::{fetch, spawn_app};
use reqwest::Method;

use crate::support::assert_problem;

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
        assert_eq!(a.body["redis"], "ok", "{url}: {a:?}");
        assert_eq!(a.body["postgres"], "ok", "{url}: {a:?}");
    }
}

#[tokio::test]
async fn the_gateways_readyz_reports_its_push_subscription() {
    let app = spawn_app().await;
    let a = fetch(app.http.get(app.gateway("/readyz"))).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["push"], "ok", "{a:?}");
    let a = fetch(app.http.get(app.dispatcher("/readyz"))).await;
    assert!(
        a.body.get("push").is_none(),
        "the dispatcher has no pushes to take: {a:?}"
    );
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

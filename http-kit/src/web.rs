//! The built web apps (API.md §12), served from `WEB_DIR`: `/app/` on agent-app-api and
//! `/console/` on the dispatcher.
//!
//! Every response carries a Content-Security-Policy that allows only the app's own scripts,
//! styles and connections (no inline script, no other origin), and caching fit for a build
//! with hashed names: `assets/` for a year, immutable; everything else (`index.html`, the
//! manifest) revalidated on every load, so a new build is picked up at once.

use std::path::{Path, PathBuf};

use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use shared::error::{ClientError, ErrorCode};

use crate::problem;

/// The policy of every app page and file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

fn secure(response: &mut ServiceResponse, immutable: bool) {
    let headers = response.headers_mut();
    let set = |headers: &mut header::HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(
        headers,
        header::CACHE_CONTROL,
        if immutable { IMMUTABLE } else { REVALIDATE },
    );
}

/// Registers the app built in `dir/<name>/` at `/<name>/` (and `/<name>` redirecting there).
/// A checkout whose app is not built answers 404 saying how to build it, rather than failing
/// to start: the APIs work without it.
pub fn app(cfg: &mut web::ServiceConfig, name: &'static str, dir: &Path) {
    let root: PathBuf = dir.join(name);
    let prefix = format!("/{name}");
    cfg.route(
        &prefix,
        web::get().to(move || async move {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, format!("/{name}/")))
                .finish()
        }),
    );
    if !root.join("index.html").is_file() {
        tracing::warn!(dir = %root.display(), "the {name} web app is not built: /{name}/ answers 404");
        let web_dir = dir.display().to_string();
        cfg.service(
            web::scope(&prefix).default_service(web::to(move |req: HttpRequest| {
                let detail = format!(
                    "{} is not built: run ./deploy/run, or `npm ci && npm run build` in web/ \
                     (WEB_DIR is {web_dir})",
                    req.path()
                );
                async move { problem(&ClientError::new(ErrorCode::NotFound, detail)) }
            })),
        );
        return;
    }
    let assets = format!("/{name}/assets/");
    cfg.service(
        web::scope(&prefix)
            .wrap_fn(move |req, srv| {
                let immutable = req.path().starts_with(&assets);
                let call = srv.call(req);
                async move {
                    let mut response = call.await?;
                    let immutable = immutable && response.status().is_success();
                    secure(&mut response, immutable);
                    Ok(response)
                }
            })
            .service(
                actix_files::Files::new("/", root)
                    .index_file("index.html")
                    .use_etag(true)
                    .use_last_modified(true),
            ),
    );
}

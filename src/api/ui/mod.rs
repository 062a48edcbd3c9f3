//! The dashboard: a page and its scripts, embedded in the binary (no CDN, no build step), served
//! beside the API. The page reads only the JSON routes (`/api/v1/...`), sending the token the user
//! typed, so it sees and may do exactly what a client with that token may.
//!
//! ```text
//! GET /                      ─▶ index.html (the experiment list)
//! GET /experiments/{name}    ─▶ index.html (the experiment page; the script reads the path)
//! GET /ui/{asset}            ─▶ app.js, app.css, uPlot (vendor/, see scripts/vendor-dashboard.sh)
//! ```
//! Every answer carries a strict Content-Security-Policy: scripts and styles only from this
//! server, no inline script, no framing, connections only back to this server.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, ApiState};

/// What the page may load and where it may connect: this server only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("assets/index.html");

/// The assets by name, with their content types.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("assets/app.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("assets/charts.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("assets/app.css")),
    ("uplot.min.js", "text/javascript; charset=utf-8", include_str!("vendor/uplot.min.js")),
    ("uplot.min.css", "text/css; charset=utf-8", include_str!("vendor/uplot.min.css")),
    ("uplot.LICENSE", "text/plain; charset=utf-8", include_str!("vendor/uplot.LICENSE")),
];

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/", get(index)).route("/experiments/{name}", get(index)).route("/ui/{asset}", get(asset))
}

async fn index() -> Response {
    with_policy("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => with_policy(kind, body),
        None => ApiError::NotFound(format!("the dashboard has no asset named {name}")).into_response(),
    }
}

fn with_policy(kind: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::super::harness::Api;
    use super::*;

    async fn get(api: &Api, uri: &str) -> Response {
        api.router.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_without_a_token_under_the_policy() {
        let api = Api::new(Some("s3cret"), 1);
        for (uri, kind) in [
            ("/", "text/html"),
            ("/experiments/quickstart", "text/html"),
            ("/ui/app.js", "text/javascript"),
            ("/ui/uplot.min.js", "text/javascript"),
        ] {
            let response = get(&api, uri).await;
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            let headers = response.headers();
            assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind), "{uri}");
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY, "{uri}");
        }
        let (status, _) = api.send("GET", "/api/v1/experiments", "", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the data behind the page still needs the token");
    }

    #[tokio::test]
    async fn an_unknown_asset_is_a_404_in_the_api_s_shape() {
        let api = Api::new(None, 1);
        let (status, body) = api.send("GET", "/ui/../../etc/passwd", "", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("\"code\":\"NotFound\""), "{body:?}");
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"), "no inline script or style, no eval");
    }
}

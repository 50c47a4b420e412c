//! The security headers of every answer, set in one middleware layer: a strict
//! `Content-Security-Policy` that the UI's own files satisfy (scripts and styles only from
//! `/static/` of this site, no inline code, nobody may frame a page), `X-Content-Type-Options:
//! nosniff`, `Referrer-Policy: same-origin`, `Strict-Transport-Security` when SpawnIt's public
//! URL is https, and `Cache-Control: no-store` on everything but the static files, since pages
//! and API answers show a service's data, and some a token or password once.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The policy of every answer. The UI loads `/static/style.css` and `/static/app.js`, and its
/// script only talks to this site (`EventSource`, `fetch`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// `Strict-Transport-Security` for a site served over https: one year, subdomains included.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Whether `public_url` (SpawnIt's public URL, when configured) is served over https.
pub fn is_https(public_url: Option<&str>) -> bool {
    public_url.is_some_and(|u| u.trim().get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")))
}

/// Adds the security headers to the answer of `req` (a header a handler set already is kept).
/// The state says whether to send `Strict-Transport-Security`.
pub async fn security_headers(State(https): State<bool>, req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "same-origin");
    set(header::X_FRAME_OPTIONS, "DENY");
    if https {
        set(header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY);
    }
    if !is_static {
        set(header::CACHE_CONTROL, "no-store");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::is_https;

    #[test]
    fn only_an_https_public_url_asks_for_strict_transport() {
        assert!(is_https(Some("https://spawnit.example.com")));
        assert!(is_https(Some("HTTPS://spawnit.example.com/")));
        assert!(!is_https(Some("http://spawnit.example.com")));
        assert!(!is_https(None));
    }
}

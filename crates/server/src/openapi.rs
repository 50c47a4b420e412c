//! The OpenAPI 3.1 document of the API, served at `/api/openapi.json` and checked in as
//! `docs/openapi.json`. It is generated: every route of [`crate::api::routes`] is registered
//! with its `#[utoipa::path]` description, its parameters and bodies are the request and view
//! types themselves (their JSON Schemas derived with them), and the limits come from the same
//! constants the checks of [`crate::ops`] use. This module only adds what is common to every
//! operation: the title, the bearer scheme, and the error answers every authenticated route
//! may give.
//!
//! Why `utoipa` (with `utoipa-axum`) rather than `aide`: the route and its documentation are
//! one `#[utoipa::path]` attribute on the handler, and `utoipa_axum::routes!` registers a
//! handler with the router and the document at once, so an `/api` route without its
//! documentation cannot be written; its derives also state serde's attributes (renames,
//! `deny_unknown_fields`, defaults) without a second schema library.

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi as _, ToSchema};

use crate::error::ErrorBody;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "SpawnIt API",
        description = "One-click self-hosted services. Every call under /api (but this document) needs \
            `Authorization: Bearer <token>`, or the web UI's session cookie (then state-changing calls need the \
            session's CSRF token in `X-CSRF-Token`)."
    ),
    components(schemas(ErrorBody))
)]
struct Base;

/// The document.
pub fn document() -> OpenApi {
    let mut doc = Base::openapi();
    doc.merge(crate::api::routes().into_openapi());
    Common.modify(&mut doc);
    doc
}

/// The error answers an authenticated operation may give, each in the one error shape.
const ERRORS: [(&str, &str); 11] = [
    ("400", "Malformed request"),
    ("401", "Missing or unknown bearer token"),
    ("403", "Admins only, or a session request without its CSRF token"),
    ("404", "Not found (or another client's)"),
    ("405", "Method not allowed"),
    ("409", "Conflicts with the current state"),
    ("415", "Body is not JSON"),
    ("422", "Invalid input: every bad field in details"),
    ("500", "A stored object is corrupt (code store_corrupt)"),
    ("502", "The provider (e.g. Docker) failed"),
    (
        "503",
        "The store is unavailable or did not answer in time (code store_unavailable), or was written by a newer \
         SpawnIt and this server only reads it (code store_read_only)",
    ),
];

/// What every operation shares: under `/api` (but this document) the bearer token and the
/// error answers; elsewhere no authentication.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.security_schemes.insert("bearer".into(), SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        for (path, item) in doc.paths.paths.iter_mut() {
            let authenticated = path.starts_with("/api/") && path != "/api/openapi.json";
            for op in operations(item) {
                if !authenticated {
                    op.security = Some(Vec::new());
                    continue;
                }
                op.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
                for (status, description) in ERRORS {
                    op.responses.responses.entry(status.into()).or_insert_with(|| {
                        let schema = Ref::from_schema_name(ErrorBody::name());
                        let content = ContentBuilder::new().schema(Some(schema)).build();
                        ResponseBuilder::new().description(description).content("application/json", content).into()
                    });
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
}

//! The OpenAPI 3 document of the API, served at `/api/openapi.json`. Written by hand, in one
//! place; a test checks that every documented operation is routed and answers as documented,
//! and schemathesis checks the answers against these schemas.

use serde_json::{Map, Value, json};

use crate::ops::{ID_PATTERN, TTL_MAX_SECONDS};

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// One operation with the error answers every authenticated route may give.
fn operation(
    id: &str,
    summary: &str,
    tag: &str,
    params: Vec<Value>,
    body: Option<Value>,
    mut responses: Map<String, Value>,
) -> Value {
    responses.entry("400").or_insert_with(|| error_response("Malformed request"));
    responses.entry("401").or_insert_with(|| error_response("Missing or unknown bearer token"));
    responses
        .entry("403")
        .or_insert_with(|| error_response("Admins only, or a session request without its CSRF token"));
    responses.entry("404").or_insert_with(|| error_response("Not found (or another client's)"));
    responses.entry("405").or_insert_with(|| error_response("Method not allowed"));
    responses.entry("409").or_insert_with(|| error_response("Conflicts with the current state"));
    responses.entry("415").or_insert_with(|| error_response("Body is not JSON"));
    responses.entry("422").or_insert_with(|| error_response("Invalid input: every bad field in details"));
    responses.entry("502").or_insert_with(|| error_response("The provider (e.g. Docker) failed"));
    responses.entry("500").or_insert_with(|| error_response("A stored object is corrupt (code store_corrupt)"));
    responses.entry("503").or_insert_with(|| {
        error_response(
            "The store is unavailable or did not answer in time (code store_unavailable), or was written by a newer SpawnIt and this server only reads it (code store_read_only)",
        )
    });
    let mut op = json!({
        "operationId": id,
        "summary": summary,
        "tags": [tag],
        "parameters": params,
        "responses": responses,
        "security": [{"bearer": []}],
    });
    if let Some(body) = body {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": body}}});
    }
    op
}

fn responses(items: &[(&str, Value)]) -> Map<String, Value> {
    items.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// A lease duration as text, the documented subset of what [`spawnit_model::duration_parse`]
/// reads: a number of seconds (optionally `s`), minutes, hours or days, from 1 second to 10 years.
/// Every string it matches is accepted; the parser also takes forms it does not list (`1h 30m`).
const TTL_PATTERN: &str = concat!(
    "^0*(",
    "([1-9][0-9]{0,7}|[12][0-9]{8}|30[0-9]{7}|31[0-4][0-9]{6}|315[0-2][0-9]{5}|3153[0-5][0-9]{4}|315360000)s?",
    "|([1-9][0-9]{0,5}|[1-4][0-9]{6}|5[01][0-9]{5}|52[0-4][0-9]{4}|525[0-5][0-9]{3}|5256000)m",
    "|([1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-6][0-9]{3}|87[0-5][0-9]{2}|87600)h",
    "|([1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650)d",
    ")$"
);

/// Printable text: no control character (Unicode category Cc), as the server checks.
const NO_CONTROL_CHARACTERS: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// `schema`, or `null` (the server takes a null field as an absent one).
fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

/// An id's schema.
fn id_schema() -> Value {
    json!({"type": "string", "pattern": ID_PATTERN})
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn path_id(name: &str, description: &str) -> Value {
    path_param(name, description, id_schema())
}

fn client_query() -> Value {
    json!({"name": "client", "in": "query", "required": false, "description": "Admins only: act on this client", "schema": id_schema()})
}

/// The document.
pub fn document() -> Value {
    let service_id = || path_id("id", "Service name");
    let network_id = || path_id("id", "Network name");
    let job_id = || path_param("id", "Job UUID", json!({"type": "string", "format": "uuid"}));
    let job_accepted = || responses(&[("202", ok("The job, queued", schema_ref("Job")))]);
    let service_ok = || responses(&[("200", ok("The service", schema_ref("Service")))]);
    let sse = |d: &str| {
        let event = json!({"type": "object", "properties": {"id": {"type": "string"}, "event": {"type": "string"}, "data": {"type": "string"}}});
        json!({"description": d, "content": {"text/event-stream": {"schema": event}}})
    };

    let paths = json!({
        "/healthz": {"get": {"operationId": "health", "summary": "Liveness", "tags": ["server"], "security": [],
            "responses": {"200": ok("Alive", json!({"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}))}}},
        "/readyz": {"get": {"operationId": "ready", "summary": "Readiness: the store and the Docker engine answer", "tags": ["server"], "security": [],
            "description": "200 when both answer now; 503 while either does not (each check says why). `/healthz` stays the liveness probe.",
            "responses": {"200": ok("Ready", schema_ref("Readiness")), "503": ok("Not ready: the store or the Docker engine does not answer", schema_ref("Readiness"))}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics", "tags": ["server"], "security": [],
            "responses": {"200": {"description": "Text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/api/openapi.json": {"get": {"operationId": "openapi", "summary": "This document", "tags": ["server"], "security": [],
            "responses": {"200": ok("OpenAPI 3 document", json!({"type": "object"}))}}},
        "/api/catalog": {"get": operation("catalog_list", "The catalog's templates", "catalog", vec![], None,
            responses(&[("200", ok("The catalog", schema_ref("Catalog")))]))},
        "/api/catalog/{template}": {"get": operation("catalog_get", "One template", "catalog", vec![path_id("template", "Template id")], None,
            responses(&[("200", ok("The template", schema_ref("Template")))]))},
        "/api/services": {
            "get": operation("service_list", "The client's services with their last seen status, in name order, a page at a time", "services",
                vec![
                    client_query(),
                    json!({"name": "limit", "in": "query", "required": false, "description": "At most this many services (all when absent)",
                           "schema": {"type": "integer", "minimum": 1, "maximum": crate::index::ListQuery::LIMIT_MAX}}),
                    json!({"name": "cursor", "in": "query", "required": false, "description": "The next_cursor of the previous page",
                           "schema": id_schema()}),
                    json!({"name": "status", "in": "query", "required": false, "description": "Only services of this status",
                           "schema": {"type": "string", "enum": crate::views::Status::ALL.map(|s| s.as_str())}}),
                ],
                None,
                responses(&[("200", ok("Services (one whose stored spec cannot be read is listed as an error, with the reason); next_cursor is null on the last page", json!({"type": "object", "required": ["services", "next_cursor"], "properties": {"services": {"type": "array", "items": {"anyOf": [schema_ref("Service"), schema_ref("UnreadableService")]}}, "next_cursor": {"type": ["string", "null"]}}})))])),
            "post": operation("service_create", "Store a service's spec from a template (deploys nothing)", "services", vec![client_query()],
                Some(schema_ref("ServiceCreate")), responses(&[("201", ok("The service", schema_ref("Service")))])),
        },
        "/api/services/{id}": {
            "get": operation("service_get", "A service, freshly planned", "services", vec![service_id(), client_query()], None, service_ok()),
            "patch": operation("service_update", "Change parameters or settings (re-renders the spec; applies nothing)", "services",
                vec![service_id(), client_query()], Some(schema_ref("ServicePatch")), service_ok()),
            "delete": operation("service_delete", "Forget a destroyed service", "services", vec![service_id(), client_query()], None,
                responses(&[("204", json!({"description": "Deleted"}))])),
        },
        "/api/services/{id}/plan": {"post": operation("service_plan", "Queue a plan job", "services", vec![service_id(), client_query()], None, job_accepted())},
        "/api/services/{id}/apply": {"post": operation("service_apply", "Queue an apply job", "services", vec![service_id(), client_query()], None, job_accepted())},
        "/api/services/{id}/destroy": {"post": operation("service_destroy", "Queue a destroy job", "services", vec![service_id(), client_query()], None, job_accepted())},
        "/api/services/{id}/lease": {
            "put": operation("lease_set", "Set the service's lease", "leases", vec![service_id(), client_query()], Some(schema_ref("LeaseSet")), service_ok()),
            "delete": operation("lease_remove", "Remove the service's lease", "leases", vec![service_id(), client_query()], None, service_ok()),
        },
        "/api/services/{id}/lease/extend": {"post": operation("lease_extend", "Extend the lease", "leases", vec![service_id(), client_query()],
            Some(json!({"type": "object", "required": ["ttl"], "additionalProperties": false, "properties": {"ttl": schema_ref("Ttl")}})), service_ok())},
        "/api/networks": {
            "get": operation("network_list", "The client's networks", "networks", vec![client_query()], None,
                responses(&[("200", ok("Networks", json!({"type": "object", "required": ["networks"], "properties": {"networks": {"type": "array", "items": schema_ref("Network")}}})))])),
            "post": operation("network_create", "Store a network's spec", "networks", vec![client_query()],
                Some(json!({"type": "object", "required": ["name"], "additionalProperties": false, "properties": {"name": id_schema()}})),
                responses(&[("201", ok("The network", schema_ref("Network")))])),
        },
        "/api/networks/{id}": {"get": operation("network_get", "A network, freshly planned", "networks", vec![network_id(), client_query()], None,
            responses(&[("200", ok("The network", schema_ref("Network")))]))},
        "/api/networks/{id}/plan": {"post": operation("network_plan", "Queue a plan job", "networks", vec![network_id(), client_query()], None, job_accepted())},
        "/api/networks/{id}/apply": {"post": operation("network_apply", "Queue an apply job", "networks", vec![network_id(), client_query()], None, job_accepted())},
        "/api/networks/{id}/destroy": {"post": operation("network_destroy", "Queue a destroy job", "networks", vec![network_id(), client_query()], None, job_accepted())},
        "/api/jobs": {"get": operation("job_list", "Jobs, newest first", "jobs",
            vec![json!({"name": "status", "in": "query", "required": false, "schema": schema_ref("JobStatus")})], None,
            responses(&[("200", ok("Jobs", json!({"type": "object", "required": ["jobs"], "properties": {"jobs": {"type": "array", "items": schema_ref("Job")}}})))]))},
        "/api/jobs/{id}": {"get": operation("job_get", "One job", "jobs", vec![job_id()], None, responses(&[("200", ok("The job", schema_ref("Job")))]))},
        "/api/jobs/{id}/events": {"get": operation("job_events", "The job's events: replayed from the start (or after Last-Event-ID), then live", "jobs",
            vec![job_id(), json!({"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string"}})], None,
            responses(&[("200", sse("Server-Sent Events; each event's name is its type, its data the JobEvent JSON"))]))},
        "/api/jobs/{id}/cancel": {"post": operation("job_cancel", "Cancel a job (it stops between resource operations)", "jobs", vec![job_id()], None, job_accepted())},
        "/api/me": {"get": operation("me", "Who the caller is", "accounts", vec![], None,
            responses(&[("200", ok("The caller", json!({"type": "object", "required": ["user", "client", "role"], "properties": {
                "user": {"type": "string"}, "client": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "member"]},
                "csrf": {"type": ["string", "null"], "description": "The session's CSRF token (session callers only)"}}})))]))},
        "/api/tokens": {
            "get": operation("token_list", "The caller's API tokens (never the tokens themselves)", "accounts", vec![], None,
                responses(&[("200", ok("Tokens", json!({"type": "object", "required": ["tokens"], "properties": {"tokens": {"type": "array", "items": schema_ref("Token")}}})))])),
            "post": operation("token_create", "Create an API token for the caller; the answer holds it, once", "accounts", vec![],
                Some(json!({"type": "object", "additionalProperties": false, "properties": {"name": {"type": "string", "maxLength": 100, "pattern": NO_CONTROL_CHARACTERS}}})),
                responses(&[("201", ok("The token record with `token`", schema_ref("Token")))])),
        },
        "/api/tokens/{id}": {"delete": operation("token_revoke", "Revoke one of the caller's tokens (admins: anyone's)", "accounts",
            vec![path_param("id", "Token id", json!({"type": "string", "pattern": "^[0-9a-f]{40}$"}))], None, responses(&[("204", json!({"description": "Revoked"}))]))},
        "/api/users": {
            "get": operation("user_list", "Every user (admins)", "accounts", vec![], None,
                responses(&[("200", ok("Users", json!({"type": "object", "required": ["users"], "properties": {"users": {"type": "array", "items": schema_ref("User")}}})))])),
            "post": operation("user_create", "Create a local user (admins)", "accounts", vec![],
                Some(json!({"type": "object", "required": ["name", "client"], "additionalProperties": false, "properties": {
                    "name": id_schema(), "client": id_schema(), "role": nullable(json!({"type": "string", "enum": ["admin", "member"]})),
                    "password": nullable(json!({"type": "string", "minLength": 8, "description": "Absent or null: the user signs in through OIDC only"})),
                    "email": email_schema()}})),
                responses(&[("201", ok("The user", schema_ref("User")))])),
        },
        "/api/audit": {"get": operation("audit_list", "The audit log, newest first (admins)", "accounts",
            vec![json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 5000}})], None,
            responses(&[("200", ok("Entries", json!({"type": "object", "required": ["entries"], "properties": {"entries": {"type": "array", "items": schema_ref("AuditEntry")}}})))]))},
        "/api/events": {"get": operation("events", "Live server events of the caller's services", "events", vec![], None,
            responses(&[("200", sse("Server-Sent Events: service_status, job, lease_warning, lease_expired"))]))},
    });

    let nullable_time = json!({"type": ["string", "null"], "format": "date-time"});
    let schemas = json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}},
        "CatalogEntry": {"type": "object", "required": ["id", "name", "category", "description", "version"], "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "category": {"type": "string"}, "description": {"type": "string"}, "version": {"type": "string"}}},
        "Catalog": {"type": "object", "required": ["templates"], "properties": {"templates": {"type": "array", "items": schema_ref("CatalogEntry")}}},
        "Template": {"type": "object", "required": ["id", "name", "category", "description", "version", "parameters", "blueprint"], "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "category": {"type": "string"}, "description": {"type": "string"},
            "version": {"type": "string"}, "parameters": {"type": "object"}, "blueprint": {"type": "object"}}},
        "Endpoint": {"type": "object", "required": ["container", "name", "address", "protocol"], "properties": {
            "container": {"type": "string"}, "name": {"type": "string"}, "address": {"type": "string"}, "protocol": {"type": "string"}, "url": {"type": "string"}}},
        "Service": {"type": "object", "required": ["client", "name", "template", "provider", "network", "exposure", "params", "status", "reasons", "endpoints", "resources"],
            "properties": {
                "client": {"type": "string"}, "name": {"type": "string"},
                "template": {"type": "object", "required": ["id", "version"], "properties": {"id": {"type": "string"}, "version": {"type": "string"}}},
                "provider": {"type": "string"}, "network": {"type": "string"}, "exposure": {"type": "string", "enum": ["loopback", "public"]},
                "params": {"type": "object", "description": "secret values are \"(sensitive)\""},
                "secret_params": {"type": "array", "items": {"type": "string"}},
                "drift_policy": {"type": "string", "enum": ["notify", "reconcile"]},
                "expires_at": nullable_time,
                "status": {"type": "string", "enum": ["compliant", "drifted", "error", "unknown"]},
                "reasons": {"type": "array", "items": {"type": "string"}},
                "reconcile": {"type": ["object", "null"], "description": "Set while reconcile applies of the service fail: the next waits (10 s doubling up to 10 min by default)",
                    "properties": {"failing": {"type": "boolean"}, "message": {"type": "string", "description": "reconcile failing: <reason>, next try at <time>"},
                        "reason": {"type": "string"}, "failures": {"type": "integer"}, "last_job": {"type": "string"}, "next_try_at": {"type": "string"}}},
                "endpoints": {"type": "array", "items": schema_ref("Endpoint")},
                "resources": {"type": "object", "additionalProperties": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}},
                "generation": {"type": "integer"},
                "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}}},
        "UnreadableService": {"type": "object", "required": ["client", "name", "status", "reasons"], "description": "A service whose stored spec cannot be read",
            "properties": {"client": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string", "enum": ["error"]},
                "reasons": {"type": "array", "items": {"type": "string"}}}},
        "Readiness": {"type": "object", "required": ["status", "checks"], "properties": {
            "status": {"type": "string", "enum": ["ready", "unavailable"]},
            "checks": {"type": "object", "required": ["store", "docker"], "additionalProperties": {"type": "object", "required": ["ok"],
                "properties": {"ok": {"type": "boolean"}, "error": {"type": "string"}}}}}},
        "ServiceCreate": {"type": "object", "required": ["template", "name"], "additionalProperties": false, "properties": {
            "template": id_schema(), "name": id_schema(), "network": nullable(id_schema()),
            "params": {"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean", "null"]}},
            "exposure": nullable(json!({"type": "string", "enum": ["loopback", "public"]})),
            "provider": nullable(json!({"type": "string", "enum": ["docker", "aws"]})),
            "aws": nullable(json!({"type": "object", "description": "Settings of the aws provider (region, instance_type, ami, allowed_cidr, …)"})),
            "drift_policy": nullable(json!({"type": "string", "enum": ["notify", "reconcile"]}))}},
        "ServicePatch": {"type": "object", "additionalProperties": false, "properties": {
            "params": nullable(json!({"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean", "null"]}})),
            "exposure": nullable(json!({"type": "string", "enum": ["loopback", "public"]})),
            "drift_policy": nullable(json!({"type": "string", "enum": ["notify", "reconcile"]}))}},
        "Ttl": {"description": "Seconds, or a duration like 90s, 30m, 2h, 7d; from 1 second to 10 years (3650 days)",
            "oneOf": [{"type": "integer", "minimum": 1, "maximum": TTL_MAX_SECONDS}, {"type": "string", "pattern": TTL_PATTERN}]},
        "LeaseSet": {"type": "object", "additionalProperties": false, "minProperties": 1, "maxProperties": 1,
            "description": "Exactly one of ttl and expires_at (a time in the future)", "properties": {
            "ttl": schema_ref("Ttl"), "expires_at": {"type": "string", "format": "date-time"}}},
        "Network": {"type": "object", "required": ["client", "name", "status", "reasons", "resources"], "properties": {
            "client": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string", "enum": ["compliant", "drifted", "error"]},
            "reasons": {"type": "array", "items": {"type": "string"}}, "resources": {"type": "object"}}},
        "Token": {"type": "object", "required": ["id", "name", "user", "client", "role", "created_at"], "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "user": {"type": "string"}, "client": {"type": "string"},
            "role": {"type": "string", "enum": ["admin", "member"]}, "created_at": {"type": "string", "format": "date-time"},
            "token": {"type": "string", "description": "Only in the answer to its creation"}}},
        "User": {"type": "object", "required": ["name", "client", "role", "created_at"], "properties": {
            "name": {"type": "string"}, "client": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "member"]},
            "password": {"type": "boolean"}, "oidc": {"type": "boolean"}, "email": {"type": ["string", "null"]}, "created_at": {"type": "string", "format": "date-time"}}},
        "AuditEntry": {"type": "object", "required": ["id", "at", "user", "client", "action", "target"], "properties": {
            "id": {"type": "string"}, "at": {"type": "string", "format": "date-time"}, "user": {"type": "string"}, "client": {"type": "string"},
            "action": {"type": "string"}, "target": {"type": "string"}, "ip": {"type": ["string", "null"]}, "detail": {"type": "string"}}},
        "JobStatus": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]},
        "Job": {"type": "object", "required": ["id", "kind", "target", "status", "requested_by", "created_at"], "properties": {
            "id": {"type": "string", "format": "uuid"}, "kind": {"type": "string", "enum": ["plan", "apply", "destroy"]},
            "target": {"type": "object", "required": ["kind", "client", "name"], "properties": {
                "kind": {"type": "string", "enum": ["service", "network"]}, "client": {"type": "string"}, "name": {"type": "string"}}},
            "status": schema_ref("JobStatus"), "requested_by": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"}, "started_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": "string", "format": "date-time"}, "error": {"type": "string"},
            "summary": {"type": "object"}, "plan": {"type": "object"}}},
    });

    json!({
        "openapi": "3.1.0",
        "info": {"title": "SpawnIt API", "version": env!("CARGO_PKG_VERSION"),
            "description": "One-click self-hosted services. Every call under /api (but this document) needs `Authorization: Bearer <token>`, or the web UI's session cookie (then state-changing calls need the session's CSRF token in `X-CSRF-Token`)."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}

/// A user's e-mail address, as `accounts::email_check` accepts it.
fn email_schema() -> Value {
    nullable(json!({
        "type": "string", "maxLength": 254,
        "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f@]+@[^\\s\\u0000-\\u001f\\u007f-\\u009f@]+$",
        "description": "Links the user's first OIDC sign-in whose ID token has exactly this address, email_verified"
    }))
}

//! Parameters and rendering: user input checked against a template's typed parameters, then the
//! blueprint's `${param}` placeholders resolved into a typed [`Instance`].
//!
//! Every placeholder renders to text; numeric fields of an instance (ports, health timings)
//! accept numbers written as text, so `"host": "${port}"` works.
//!
//! Validation reports every bad field at once, each with its name and reason, and never echoes a
//! secret's value. Rendering is pure apart from the random source used by `generate`.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use serde_json::Value;
use spawnit_model::Id;
use spawnit_model::spec::Instance;
use spawnit_model::template::{Generator, ParamType, Parameter, Template};

/// One invalid field and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// Every invalid field of one request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid input: {}", .errors.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect::<Vec<_>>().join("; "))]
pub struct ValidationError {
    pub errors: Vec<FieldError>,
}

impl ValidationError {
    pub fn one(field: impl Into<String>, reason: impl Into<String>) -> ValidationError {
        ValidationError { errors: vec![FieldError { field: field.into(), reason: reason.into() }] }
    }
}

/// A template that cannot be used, whatever the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template {template}: {reason}")]
pub struct TemplateError {
    pub template: String,
    pub reason: String,
}

/// The longest string value accepted for a parameter.
const MAX_STRING_LEN: usize = 4096;

/// Checks `input` against the template's parameters and fills in defaults and generated values.
///
/// `previous` holds a service's current values: a parameter the input leaves out keeps its
/// previous value (so a generated password survives a change of another parameter). Values may
/// be given as strings (from a command line or a form) and are converted to the declared type.
pub fn params_resolve(
    template: &Template,
    input: &BTreeMap<String, Value>,
    previous: Option<&BTreeMap<String, Value>>,
    rng: &mut impl Rng,
) -> Result<BTreeMap<String, Value>, ValidationError> {
    let mut errors = Vec::new();
    for name in input.keys() {
        if !template.parameters.contains_key(name) {
            let known: Vec<&str> = template.parameters.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            errors.push(FieldError {
                field: name.chars().take(80).collect(),
                reason: format!("unknown parameter (template {} has: {known})", template.id),
            });
        }
    }
    let mut out = BTreeMap::new();
    for (name, param) in &template.parameters {
        let given = input.get(name).filter(|v| !v.is_null() && *v != &Value::String(String::new()));
        let value = match given {
            Some(v) => match param_check(param, v) {
                Ok(v) => v,
                Err(reason) => {
                    errors.push(FieldError { field: name.clone(), reason });
                    continue;
                }
            },
            None => match (previous.and_then(|p| p.get(name)), &param.default, param.generate) {
                (Some(prev), _, _) => prev.clone(),
                (None, Some(default), _) => default.clone(),
                (None, None, Some(generator)) => Value::String(generate(generator, rng)),
                (None, None, None) => {
                    errors.push(FieldError { field: name.clone(), reason: "is required".into() });
                    continue;
                }
            },
        };
        out.insert(name.clone(), value);
    }
    if errors.is_empty() { Ok(out) } else { Err(ValidationError { errors }) }
}

/// Converts and checks one given value; the error never contains a secret's value.
fn param_check(param: &Parameter, value: &Value) -> Result<Value, String> {
    let shown = |v: &Value| if param.secret { String::new() } else { format!(" (got {})", short(v)) };
    match param.param_type() {
        ParamType::Integer => {
            let n = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| format!("must be a whole number{}", shown(value)))?;
            if let Some(min) = param.minimum.filter(|min| n < *min) {
                return Err(format!("must be at least {min}{}", shown(value)));
            }
            if let Some(max) = param.maximum.filter(|max| n > *max) {
                return Err(format!("must be at most {max}{}", shown(value)));
            }
            Ok(Value::from(n))
        }
        ParamType::Boolean => match value {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if matches!(s.as_str(), "true" | "yes" | "on" | "1") => Ok(Value::Bool(true)),
            Value::String(s) if matches!(s.as_str(), "false" | "no" | "off" | "0") => Ok(Value::Bool(false)),
            _ => Err(format!("must be true or false{}", shown(value))),
        },
        ParamType::Enum => {
            let s = value.as_str().ok_or_else(|| format!("must be one of {}", param.choices.join(", ")))?;
            if param.choices.iter().any(|c| c == s) {
                Ok(Value::String(s.to_owned()))
            } else {
                Err(format!("must be one of {}{}", param.choices.join(", "), shown(value)))
            }
        }
        ParamType::String => {
            let s = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err("must be a string".into()),
            };
            if s.len() > MAX_STRING_LEN {
                return Err(format!("must be at most {MAX_STRING_LEN} bytes long"));
            }
            if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                return Err("must not contain control characters".into());
            }
            if let Some(pattern) = &param.pattern {
                let re = anchored(pattern).map_err(|e| format!("the template's pattern is invalid: {e}"))?;
                if !re.is_match(&s) {
                    return Err(format!("must match the pattern {pattern}{}", shown(value)));
                }
            }
            Ok(Value::String(s))
        }
    }
}

fn anchored(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
}

fn generate(generator: Generator, rng: &mut impl Rng) -> String {
    match generator {
        Generator::Password => (0..24).map(|_| rng.sample(rand::distr::Alphanumeric) as char).collect(),
        Generator::Hex => (0..32).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect(),
    }
}

/// The value a placeholder stands for.
fn placeholder_value<'a>(
    name: &str,
    params: &'a BTreeMap<String, Value>,
    builtins: &'a BTreeMap<&'static str, Value>,
) -> Option<&'a Value> {
    params.get(name).or_else(|| builtins.get(name))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces placeholders in one string; unknown names are collected in `unknown`.
fn render_string(
    s: &str,
    params: &BTreeMap<String, Value>,
    builtins: &BTreeMap<&'static str, Value>,
    unknown: &mut BTreeSet<String>,
) -> Value {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(r) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = after.strip_prefix("${") {
            match r.find('}') {
                Some(end) => {
                    let name = &r[..end];
                    match placeholder_value(name, params, builtins) {
                        Some(v) => out.push_str(&value_text(v)),
                        None => {
                            unknown.insert(name.to_owned());
                        }
                    }
                    rest = &r[end + 1..];
                }
                None => {
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Value::String(out)
}

fn render_value(
    v: &Value,
    params: &BTreeMap<String, Value>,
    builtins: &BTreeMap<&'static str, Value>,
    unknown: &mut BTreeSet<String>,
) -> Value {
    match v {
        Value::String(s) => render_string(s, params, builtins, unknown),
        Value::Array(items) => Value::Array(items.iter().map(|i| render_value(i, params, builtins, unknown)).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), render_value(v, params, builtins, unknown))).collect())
        }
        other => other.clone(),
    }
}

/// Renders a template's blueprint with resolved parameters into a checked [`Instance`].
pub fn render(
    template: &Template,
    client: &Id,
    service: &Id,
    params: &BTreeMap<String, Value>,
) -> Result<Instance, TemplateError> {
    let fail = |reason: String| TemplateError { template: template.id.to_string(), reason };
    let builtins = BTreeMap::from([
        ("client", Value::String(client.to_string())),
        ("service", Value::String(service.to_string())),
    ]);
    let mut unknown = BTreeSet::new();
    let rendered = render_value(&template.blueprint, params, &builtins, &mut unknown);
    if !unknown.is_empty() {
        return Err(fail(format!(
            "blueprint uses undeclared parameters: {}",
            unknown.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let rendered = conditionals_resolve(rendered).map_err(fail)?.unwrap_or(Value::Null);
    let instance: Instance =
        serde_json::from_value(rendered).map_err(|e| fail(format!("blueprint is not a valid instance: {e}")))?;
    instance_check(&instance).map_err(fail)?;
    host_access_check(template, &instance).map_err(fail)?;
    Ok(instance)
}

/// Host access (the Docker socket) and an AWS instance role are for admin-only templates: SpawnIt deploying itself. A
/// tenant template asking for it is not a template.
fn host_access_check(template: &Template, instance: &Instance) -> Result<(), String> {
    if template.admin_only {
        return Ok(());
    }
    if let Some((name, _)) = instance.containers.iter().find(|(_, c)| c.docker_socket) {
        return Err(format!(
            "container {name}: docker_socket gives control of the host: only an admin-only template (\"admin_only\": true) may ask for it"
        ));
    }
    match instance.containers.iter().find(|(_, c)| c.aws_instance_role.is_some()) {
        Some((name, _)) => Err(format!(
            "container {name}: aws_instance_role gives AWS access with SpawnIt's credentials: only an admin-only template (\"admin_only\": true) may ask for it"
        )),
        None => Ok(()),
    }
}

/// Resolves the blueprint's conditional parts once placeholders are rendered: an object with a
/// `$when` key (`"true"` or `"false"`, usually `"${param}"`) is kept without that key when true
/// and removed from its map or array when false; with a `$value` key it stands for that value.
/// `None`: the whole value is removed.
fn conditionals_resolve(v: Value) -> Result<Option<Value>, String> {
    match v {
        Value::Object(mut map) => {
            if let Some(when) = map.remove("$when") {
                let keep = match &when {
                    Value::Bool(b) => *b,
                    Value::String(s) if s == "true" => true,
                    Value::String(s) if s == "false" => false,
                    other => return Err(format!("$when must be true or false, got {other}")),
                };
                if !keep {
                    return Ok(None);
                }
                if let Some(value) = map.remove("$value") {
                    return conditionals_resolve(value);
                }
            }
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if let Some(v) = conditionals_resolve(v)? {
                    out.insert(k, v);
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for v in items {
                if let Some(v) = conditionals_resolve(v)? {
                    out.push(v);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        other => Ok(Some(other)),
    }
}

/// Checks replicas, scale policies and the load balancer of a rendered instance. A bad value
/// that came from a parameter (`"max": "${max_replicas}"`) is reported under the parameter's
/// name, any other under its place in the blueprint (`load_balancer.container`).
pub fn scaling_check(template: &Template, instance: &Instance) -> Result<(), ValidationError> {
    use spawnit_model::spec::MAX_REPLICAS;
    let mut errors = Vec::new();
    let mut bad = |path: &[&str], reason: String| {
        errors.push(FieldError { field: blueprint_field(template, path), reason });
    };
    for (name, c) in &instance.containers {
        let n = name.as_str();
        if let Some(r) = c.replicas
            && !(1..=MAX_REPLICAS).contains(&r)
        {
            bad(&["containers", n, "replicas"], format!("must be between 1 and {MAX_REPLICAS} (got {r})"));
        }
        if let Some(s) = &c.scale {
            if !(1..=MAX_REPLICAS).contains(&s.min) {
                bad(
                    &["containers", n, "scale", "min"],
                    format!("must be between 1 and {MAX_REPLICAS} (got {})", s.min),
                );
            }
            if s.max > MAX_REPLICAS {
                bad(&["containers", n, "scale", "max"], format!("must be at most {MAX_REPLICAS} (got {})", s.max));
            } else if s.max < s.min {
                bad(
                    &["containers", n, "scale", "max"],
                    format!("must be at least the minimum replicas {} (got {})", s.min, s.max),
                );
            }
            if !(1..=1000).contains(&s.target_cpu_percent) {
                bad(
                    &["containers", n, "scale", "target_cpu_percent"],
                    format!("must be between 1 and 1000 percent of a core (got {})", s.target_cpu_percent),
                );
            }
            if let Some(r) = c.replicas
                && s.min <= s.max
                && s.max <= MAX_REPLICAS
                && !(s.min..=s.max).contains(&r)
            {
                bad(
                    &["containers", n, "replicas"],
                    format!("must be between the scale policy's minimum {} and maximum {} (got {r})", s.min, s.max),
                );
            }
        }
        if c.replicated() && !c.ports.is_empty() {
            bad(
                &["containers", n, "ports"],
                "a replicated container publishes no host port: put a load_balancer in front of it".into(),
            );
        }
    }
    if let Some(lb) = &instance.load_balancer {
        if !instance.containers.contains_key(&lb.container) {
            let known: Vec<&str> = instance.containers.keys().map(String::as_str).collect();
            bad(
                &["load_balancer", "container"],
                format!("{:?} is not a container of this service (it has: {})", lb.container, known.join(", ")),
            );
        }
        if lb.port == 0 {
            bad(&["load_balancer", "port"], "must not be 0".into());
        }
        if lb.host == 0 {
            bad(&["load_balancer", "host"], "must not be 0".into());
        }
        let taken = instance.containers.values().flat_map(|c| &c.ports).any(|p| p.host == lb.host);
        if taken {
            bad(&["load_balancer", "host"], format!("host port {} is already published by a container", lb.host));
        }
        if let Err(reason) = crate::balancer::health_path_check(&lb.health_path) {
            bad(&["load_balancer", "health_path"], reason);
        }
        if lb.image.trim().is_empty() || lb.image.chars().any(char::is_whitespace) {
            bad(&["load_balancer", "image"], "must be an image reference".into());
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }) }
}

/// The name a bad rendered value is reported under: the parameter it was rendered from when the
/// blueprint holds exactly `${param}` there, else its path (`load_balancer.container`).
fn blueprint_field(template: &Template, path: &[&str]) -> String {
    let raw = path.iter().try_fold(&template.blueprint, |v, key| v.get(*key));
    let param = raw.and_then(Value::as_str).and_then(|s| s.strip_prefix("${")?.strip_suffix('}'));
    match param {
        Some(p) if template.parameters.contains_key(p) => p.to_owned(),
        _ => path.join("."),
    }
}

/// Structural checks a rendered instance must pass.
fn instance_check(instance: &Instance) -> Result<(), String> {
    if instance.containers.is_empty() {
        return Err("blueprint has no container".into());
    }
    let mut host_ports = BTreeSet::new();
    for name in instance.volumes.keys() {
        Id::parse(name).map_err(|e| format!("volume name: {e}"))?;
    }
    for (name, c) in &instance.containers {
        Id::parse(name).map_err(|e| format!("container name: {e}"))?;
        if c.image.trim().is_empty() {
            return Err(format!("container {name}: image is empty"));
        }
        for m in &c.volumes {
            if !instance.volumes.contains_key(&m.volume) {
                return Err(format!("container {name}: mounts undeclared volume {:?}", m.volume));
            }
            if !m.path.starts_with('/') || m.path == "/" || m.path.split('/').any(|p| p == "..") {
                return Err(format!("container {name}: mount path {:?} must be an absolute path below /", m.path));
            }
        }
        for dep in &c.depends_on {
            if !instance.containers.contains_key(dep) || dep == name {
                return Err(format!("container {name}: depends on unknown container {dep:?}"));
            }
        }
        for p in &c.ports {
            if p.host == 0 || p.container == 0 {
                return Err(format!("container {name}: port {} must not be 0", p.name));
            }
            if !host_ports.insert((p.host, p.protocol)) {
                return Err(format!("host port {} is published twice", p.host));
            }
        }
    }
    Ok(())
}

/// Checks a template as a whole: parameter definitions are consistent and the blueprint renders
/// with sample values (each parameter's default, or a generated or minimal value).
pub fn template_check(template: &Template) -> Result<(), TemplateError> {
    let fail = |reason: String| TemplateError { template: template.id.to_string(), reason };
    let mut sample = BTreeMap::new();
    for (name, p) in &template.parameters {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(fail(format!("parameter name {name:?} must be letters, digits and '_'")));
        }
        if p.param_type() == ParamType::Enum && p.choices.is_empty() {
            return Err(fail(format!("parameter {name}: an enum needs choices")));
        }
        if let Some(pattern) = &p.pattern {
            anchored(pattern).map_err(|e| fail(format!("parameter {name}: invalid pattern: {e}")))?;
        }
        let value = match (&p.default, p.generate) {
            (Some(d), _) => param_check(p, d).map_err(|r| fail(format!("parameter {name}: default {r}")))?,
            (None, Some(g)) => Value::String(generate(g, &mut rand::rng())),
            (None, None) => match p.param_type() {
                ParamType::Integer => Value::from(p.minimum.unwrap_or(1)),
                ParamType::Boolean => Value::Bool(false),
                ParamType::Enum => Value::String(p.choices[0].clone()),
                ParamType::String => Value::String("sample".into()),
            },
        };
        sample.insert(name.clone(), value);
    }
    let sample_id = Id::parse("sample").map_err(|e| fail(e.to_string()))?;
    let instance = render(template, &sample_id, &sample_id, &sample)?;
    scaling_check(template, &instance).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> Template {
        serde_json::from_value(json!({
            "id": "t", "name": "T", "category": "demo", "description": "d", "version": "1.0.0",
            "parameters": {
                "password": {"type": "string", "secret": true, "generate": "password"},
                "port": {"type": "integer", "default": 8080, "minimum": 1024, "maximum": 65535},
                "mode": {"type": "enum", "enum": ["a", "b"], "default": "a"},
                "name": {"type": "string", "default": "x", "pattern": "[a-z]+"},
                "debug": {"type": "boolean", "default": false}
            },
            "blueprint": {
                "volumes": {"data": {}},
                "containers": {"web": {
                    "image": "img:1",
                    "command": ["serve", "--pw=${password}", "--name", "${name}", "$${literal}", "${debug}"],
                    "env": {"SERVICE": "${client}-${service}", "MODE": "${mode}"},
                    "ports": [{"name": "http", "container": 80, "host": "${port}", "scheme": "http"}],
                    "volumes": [{"volume": "data", "path": "/data"}]
                }}
            }
        }))
        .unwrap()
    }

    #[test]
    fn renders_with_defaults_and_generated_secret() {
        let t = template();
        template_check(&t).unwrap();
        let params = params_resolve(&t, &BTreeMap::new(), None, &mut rand::rng()).unwrap();
        let pw = params["password"].as_str().unwrap().to_owned();
        assert_eq!(pw.len(), 24);
        let id = Id::parse("web").unwrap();
        let client = Id::parse("acme").unwrap();
        let inst = render(&t, &client, &id, &params).unwrap();
        let c = &inst.containers["web"];
        assert_eq!(
            c.command,
            vec![
                "serve".to_string(),
                format!("--pw={pw}"),
                "--name".into(),
                "x".into(),
                "${literal}".into(),
                "false".into()
            ]
        );
        assert_eq!(c.env["SERVICE"], "acme-web");
        assert_eq!(c.ports[0].host, 8080);
    }

    #[test]
    fn reports_every_bad_field_and_never_a_secret() {
        let t = template();
        let input = BTreeMap::from([
            ("port".to_owned(), json!("70000")),
            ("mode".to_owned(), json!("c")),
            ("name".to_owned(), json!("NO")),
            ("debug".to_owned(), json!("maybe")),
            ("password".to_owned(), json!({"x": 1})),
            ("nope".to_owned(), json!(1)),
        ]);
        let err = params_resolve(&t, &input, None, &mut rand::rng()).unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["nope", "debug", "mode", "name", "password", "port"]);
        assert!(err.to_string().contains("port: must be at most 65535 (got \"70000\")"), "{err}");
        assert!(err.to_string().contains("nope: unknown parameter"), "{err}");

        let secret = BTreeMap::from([("password".to_owned(), json!("x".repeat(5000)))]);
        let err = params_resolve(&t, &secret, None, &mut rand::rng()).unwrap_err();
        assert!(!err.to_string().contains("xxxxx"), "{err}");
    }

    #[test]
    fn keeps_previous_values_and_converts_strings() {
        let t = template();
        let prev = params_resolve(&t, &BTreeMap::new(), None, &mut rand::rng()).unwrap();
        let input = BTreeMap::from([("port".to_owned(), json!("9090")), ("debug".to_owned(), json!("true"))]);
        let next = params_resolve(&t, &input, Some(&prev), &mut rand::rng()).unwrap();
        assert_eq!(next["password"], prev["password"]);
        assert_eq!(next["port"], json!(9090));
        assert_eq!(next["debug"], json!(true));
    }

    /// A replicated `app` behind a load balancer, its bounds and target from parameters.
    fn scaled_template() -> Template {
        serde_json::from_value(json!({
            "id": "t", "name": "T", "category": "demo", "description": "d", "version": "1.0.0",
            "parameters": {
                "replicas": {"type": "integer", "default": 2},
                "lo": {"type": "integer", "default": 1},
                "hi": {"type": "integer", "default": 4},
                "target": {"type": "string", "default": "app"}
            },
            "blueprint": {
                "containers": {"app": {
                    "image": "img:1",
                    "replicas": "${replicas}",
                    "scale": {"min": "${lo}", "max": "${hi}", "target_cpu_percent": 70}
                }},
                "load_balancer": {"container": "${target}", "port": 80, "host": 8080, "sticky": true}
            }
        }))
        .unwrap()
    }

    fn scaling_errors(t: &Template, input: &[(&str, Value)]) -> Vec<(String, String)> {
        let input = input.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let params = params_resolve(t, &input, None, &mut rand::rng()).unwrap();
        let id = Id::parse("s").unwrap();
        let instance = render(t, &id, &id, &params).unwrap();
        match scaling_check(t, &instance) {
            Ok(()) => Vec::new(),
            Err(e) => e.errors.into_iter().map(|e| (e.field, e.reason)).collect(),
        }
    }

    #[test]
    fn a_load_balancer_fronting_a_missing_container_is_refused_naming_the_field() {
        template_check(&scaled_template()).unwrap();
        let mut t = scaled_template();
        t.blueprint["load_balancer"]["container"] = json!("nope");
        let err = template_check(&t).unwrap_err();
        assert!(
            err.reason.contains("load_balancer.container: \"nope\" is not a container of this service (it has: app)"),
            "{err}"
        );
        // The same value from a parameter is reported under the parameter's name.
        let t = scaled_template();
        assert_eq!(
            scaling_errors(&t, &[("target", json!("nope"))]),
            [("target".to_owned(), "\"nope\" is not a container of this service (it has: app)".to_owned())]
        );
    }

    #[test]
    fn replica_bounds_from_parameters_are_refused_under_the_parameter_name() {
        let t = scaled_template();
        assert_eq!(scaling_errors(&t, &[]), []);
        assert_eq!(
            scaling_errors(&t, &[("lo", json!(3)), ("hi", json!(2))]),
            [("hi".to_owned(), "must be at least the minimum replicas 3 (got 2)".to_owned())]
        );
        assert_eq!(
            scaling_errors(&t, &[("replicas", json!(9))]),
            [("replicas".to_owned(), "must be between the scale policy's minimum 1 and maximum 4 (got 9)".to_owned())]
        );
        assert_eq!(
            scaling_errors(&t, &[("replicas", json!(0)), ("lo", json!(0))]),
            [
                ("replicas".to_owned(), "must be between 1 and 20 (got 0)".to_owned()),
                ("lo".to_owned(), "must be between 1 and 20 (got 0)".to_owned()),
            ]
        );
        assert_eq!(
            scaling_errors(&t, &[("hi", json!(21))]),
            [("hi".to_owned(), "must be at most 20 (got 21)".to_owned())]
        );
        // A fixed bad value in the blueprint is reported under its place.
        let mut fixed = scaled_template();
        fixed.blueprint["containers"]["app"]["scale"]["target_cpu_percent"] = json!(0);
        let err = template_check(&fixed).unwrap_err();
        assert!(err.reason.contains("containers.app.scale.target_cpu_percent: must be between 1 and 1000"), "{err}");
    }

    #[test]
    fn refuses_templates_that_ask_for_host_access() {
        let mut t = template();
        t.blueprint["containers"]["web"]["privileged"] = json!(true);
        assert!(template_check(&t).unwrap_err().reason.contains("unknown field `privileged`"));
        let mut t = template();
        t.blueprint["containers"]["web"]["volumes"] = json!([{"volume": "/var/run/docker.sock", "path": "/x"}]);
        assert!(template_check(&t).unwrap_err().reason.contains("undeclared volume"));
        // The Docker socket: refused in a tenant template, as a field or as a volume, however
        // it is written; an admin-only template may have it.
        for socket in [json!(true), json!("true")] {
            let mut t = template();
            t.blueprint["containers"]["web"]["docker_socket"] = socket;
            let err = template_check(&t).unwrap_err();
            assert!(err.reason.contains("container web: docker_socket gives control of the host"), "{err}");
            t.admin_only = true;
            template_check(&t).unwrap();
            let params = params_resolve(&t, &BTreeMap::new(), None, &mut rand::rng()).unwrap();
            let id = Id::parse("s").unwrap();
            assert!(render(&t, &id, &id, &params).unwrap().containers["web"].docker_socket);
        }
        // An AWS instance role likewise: SpawnIt's AWS credentials make it.
        let mut t = template();
        t.blueprint["containers"]["web"]["aws_instance_role"] = json!({"s3": "s3://any-bucket/x"});
        let err = template_check(&t).unwrap_err();
        assert!(err.reason.contains("container web: aws_instance_role gives AWS access"), "{err}");
        t.admin_only = true;
        template_check(&t).unwrap();
        let params = params_resolve(&t, &BTreeMap::new(), None, &mut rand::rng()).unwrap();
        let id = Id::parse("s").unwrap();
        let role = render(&t, &id, &id, &params).unwrap().containers["web"].aws_instance_role.clone();
        assert_eq!(role.unwrap().s3, "s3://any-bucket/x");
        let mut t = template();
        t.admin_only = true;
        t.blueprint["containers"]["web"]["volumes"] = json!([{"volume": "/var/run/docker.sock", "path": "/x"}]);
        assert!(template_check(&t).unwrap_err().reason.contains("undeclared volume"));
        t.blueprint["containers"]["web"]["privileged"] = json!(true);
        assert!(template_check(&t).unwrap_err().reason.contains("unknown field `privileged`"));
        let mut t = template();
        t.blueprint["containers"]["web"]["command"] = json!(["${missing}"]);
        assert!(template_check(&t).unwrap_err().reason.contains("undeclared parameters: missing"));
    }
}

//! The OpenAPI 3.1 document: paths from `ROUTES`, the experiment schema from the Rust types.

use serde_json::{Value, json};

use super::ROUTES;
use crate::spec::Experiment;

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        entry[*method] = json!({
            "summary": summary,
            "parameters": params,
            "responses": {"default": {"description": "JSON; errors are {\"error\": {code, message, field, problems}}"}},
        });
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "tuna", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "schemas": {"Experiment": schemars::schema_for!(Experiment)},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

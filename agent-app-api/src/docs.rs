//! The documents of API.md §11: `GET /openapi.json` (OpenAPI 3.1 of the REST endpoints, from the
//! handlers' `#[utoipa::path]`) and `GET /asyncapi.json` (AsyncAPI 3.0 of the WebSocket, §6).
//!
//! The AsyncAPI messages are the variants of [`ClientMessage`] and [`ServerMessage`], whose
//! schemas utoipa derives from the very enums the gateway parses and writes frames with; a frame
//! type added to either enum appears here without anyone editing this file.

use std::sync::OnceLock;

use actix_web::web;
use serde_json::{json, Map, Value};
use shared::error::ErrorCode;
use shared::protocol::{ClientMessage, ServerMessage, MAX_FRAME_BYTES};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{OpenApi as _, PartialSchema, ToSchema};

/// agent-app-api's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "agent-app-api",
        description = "The agents' API of the remote-agent dispatch platform: their own profile and shifts (REST), and the WebSocket of live dispatch, described in `/asyncapi.json` (API.md §6, §7)."
    ),
    paths(crate::me::me, crate::me::shifts, crate::ws::upgrade, asyncapi_doc),
    tags(
        (name = "agent", description = "The agent's own resources (role `agent`)."),
        (name = "operations", description = "Health, readiness, metrics and the documents, without authentication."),
    )
)]
struct ApiDoc;

/// The `type` of a variant's schema: the single value of its `type` property's `enum`.
fn frame_type(variant: &Value) -> Option<String> {
    let enum_of = |v: &Value| v.pointer("/properties/type/enum/0").cloned();
    enum_of(variant)
        .or_else(|| variant["allOf"].as_array()?.iter().find_map(enum_of))
        .and_then(|t| t.as_str().map(str::to_owned))
}

/// One message per variant of `T` (an enum tagged by `type`), named by its type, with the
/// components its schema refers to added to `schemas`.
fn messages<T: ToSchema>(
    schemas: &mut Vec<(String, RefOr<Schema>)>,
    direction: &str,
) -> Map<String, Value> {
    T::schemas(schemas);
    let whole = serde_json::to_value(T::schema()).unwrap_or_default();
    let mut out = Map::new();
    for variant in whole["oneOf"].as_array().into_iter().flatten() {
        let Some(kind) = frame_type(variant) else {
            continue;
        };
        let summary = variant["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let payload = json!({
            "allOf": [
                variant,
                {
                    "type": "object",
                    "properties": {"ref": {
                        "description": format!(
                            "Any JSON value; {direction}."
                        )
                    }}
                }
            ]
        });
        out.insert(
            kind.clone(),
            json!({
                "name": kind,
                "title": kind,
                "summary": summary,
                "contentType": "application/json",
                "correlationId": {"$ref": "#/components/correlationIds/ref"},
                "payload": payload,
            }),
        );
    }
    out
}

/// The AsyncAPI 3.0 document of the agent WebSocket.
pub fn asyncapi() -> Value {
    let mut schemas = Vec::new();
    let client = messages::<ClientMessage>(
        &mut schemas,
        "the reply the frame causes echoes it (API.md §6)",
    );
    let server = messages::<ServerMessage>(
        &mut schemas,
        "present when the frame answers a client frame that carried one",
    );
    let error_codes = ErrorCode::schema();
    schemas.push((ErrorCode::name().into(), error_codes));
    let schemas: Map<String, Value> = schemas
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or_default()))
        .collect();
    let refs = |direction: &str, names: &Map<String, Value>| -> Vec<Value> {
        names
            .keys()
            .map(|k| json!({"$ref": format!("#/channels/agent/messages/{direction}.{k}")}))
            .collect()
    };
    let mut channel_messages = Map::new();
    for (direction, names) in [("client", &client), ("server", &server)] {
        for k in names.keys() {
            channel_messages.insert(
                format!("{direction}.{k}"),
                json!({"$ref": format!("#/components/messages/{direction}.{k}")}),
            );
        }
    }
    let mut component_messages = Map::new();
    for (direction, names) in [("client", client.clone()), ("server", server.clone())] {
        for (k, v) in names {
            component_messages.insert(format!("{direction}.{k}"), v);
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "agent-app-api: the agent WebSocket",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Live dispatch for one agent (API.md §6). JSON text frames of at most {MAX_FRAME_BYTES} bytes, each with a `type`. \
                 Authenticate with `Authorization: Bearer <JWT>` on the handshake, or with an `auth` frame within 10 s. \
                 One live connection per agent. Close codes: 4001 not authenticated, 4003 not allowed, 4008 too many bad frames, 4009 replaced. \
                 More than 10 frames a second (bursts of 20) get `error` `rate_limited`; the server pings every 20 s."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8081",
                "protocol": "ws",
                "description": "The default `AGENT_API_LISTEN`.",
                "security": [{"$ref": "#/components/securitySchemes/bearer"}],
            }
        },
        "channels": {
            "agent": {
                "address": "/v1/agent/ws",
                "title": "The agent's connection",
                "messages": channel_messages,
                "bindings": {"ws": {"method": "GET", "bindingVersion": "0.1.0"}},
            }
        },
        "operations": {
            "receiveClientFrames": {
                "action": "receive",
                "channel": {"$ref": "#/channels/agent"},
                "summary": "Frames from the agent's app: auth, set_status, accept, decline, complete.",
                "messages": refs("client", &client),
            },
            "sendServerFrames": {
                "action": "send",
                "channel": {"$ref": "#/channels/agent"},
                "summary": "Frames to the agent's app: welcome, status, offer, offer_revoked, assigned, ticket_cancelled, error.",
                "messages": refs("server", &server),
            }
        },
        "components": {
            "schemas": schemas,
            "messages": component_messages,
            "correlationIds": {
                "ref": {
                    "description": "A client frame's `ref`, echoed by the reply it causes.",
                    "location": "$message.payload#/ref",
                }
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Role `agent`, `sub` the agent's id; or the first frame `auth`.",
                }
            },
        },
    })
}

/// `GET /asyncapi.json`.
#[utoipa::path(
    get,
    path = "/asyncapi.json",
    operation_id = "asyncapi",
    tag = "operations",
    responses((status = 200, description = "The AsyncAPI 3.0 document of the agent WebSocket.", body = Object))
)]
#[allow(dead_code)]
fn asyncapi_doc() {}

/// Registers `GET /openapi.json` and `GET /asyncapi.json`, each built once.
pub fn routes(cfg: &mut web::ServiceConfig) {
    static OPENAPI: OnceLock<String> = OnceLock::new();
    static ASYNCAPI: OnceLock<String> = OnceLock::new();
    let openapi = OPENAPI.get_or_init(|| http_kit::openapi::document(ApiDoc::openapi()));
    http_kit::openapi::route(cfg, "/openapi.json", openapi.clone());
    let asyncapi = ASYNCAPI.get_or_init(|| asyncapi().to_string());
    http_kit::openapi::route(cfg, "/asyncapi.json", asyncapi.clone());
}

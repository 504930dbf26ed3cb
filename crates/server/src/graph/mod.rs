//! The Microsoft Graph subset: `applications` (with `addPassword` and
//! `removePassword`) and `servicePrincipals`. Callers need a token for the
//! Graph resource. Errors use Graph's shape.

mod odata;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lockstep_core::duration::IsoDuration;
use lockstep_identity::{actions, AppPolicy, DirectoryError, Principal, Scope};
use lockstep_store::{AppRow, CredentialRow};
use serde_json::{json, Map, Value};

use crate::audit::AuditHandle;
use crate::auth::{authenticate, authorize, AuthFailure, Refusal};
use crate::state::Shared;
use odata::{iso, parse_filter, parse_iso};

/// A Graph error response.
pub struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    client_request_id: Option<String>,
}

impl GraphError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            client_request_id: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    fn unaudited() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            crate::audit::NOT_RECORDED,
        )
    }

    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{}' does not exist or one of its queried reference-property objects are not present.", what.chars().take(80).collect::<String>()),
        )
    }
}

impl From<DirectoryError> for GraphError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::AppNotFound(id) | DirectoryError::TenantNotFound(id) => {
                Self::not_found(&id)
            }
            DirectoryError::CredentialNotFound(id) => Self::new(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                format!(
                    "No password credential found with keyId '{}'.",
                    id.chars().take(64).collect::<String>()
                ),
            ),
            DirectoryError::Invalid(m) => Self::bad(m),
            e @ DirectoryError::LifetimeOverPolicy(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "CredentialInvalidLifetimeAsPerAppPolicy",
                e.to_string(),
            ),
            DirectoryError::Store(e) => {
                tracing::error!(error = %e, "graph request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "An internal error occurred.",
                )
            }
        }
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": iso(time::OffsetDateTime::now_utc().unix_timestamp()),
                "request-id": lockstep_crypto::random::guid(),
                "client-request-id": self.client_request_id.unwrap_or_default(),
            }
        }});
        (self.status, Json(body)).into_response()
    }
}

struct Call {
    state: Shared,
    audit: AuditHandle,
    principal: Principal,
    base: String,
    query: Vec<(String, String)>,
}

impl Call {
    fn allow(&self, action: &str, scope: Scope) -> Result<(), GraphError> {
        authorize(&self.state, &self.audit, &self.principal, action, &scope).map_err(|r| match r {
            Refusal::Denied(d) => GraphError::new(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                format!(
                    "Insufficient privileges to complete the operation. Action: '{}'.",
                    d.action
                ),
            ),
            Refusal::Unaudited => GraphError::unaudited(),
        })
    }

    fn tenant(&self) -> Scope {
        Scope::tenant(&self.principal.tenant_id)
    }

    fn app_scope(&self, app: &AppRow) -> Scope {
        Scope::application(&app.tenant_id, &app.object_id)
    }

    fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Finds an app by `{objectId}` or `(appId='…')`, in the caller's tenant.
    fn app(&self, key: &str) -> Result<AppRow, GraphError> {
        let found = match key
            .strip_prefix("(appId='")
            .and_then(|k| k.strip_suffix("')"))
        {
            Some(app_id) => self.state.directory.app_by_app_id(app_id)?,
            None => self.state.directory.app(key)?,
        };
        found
            .filter(|a| a.tenant_id == self.principal.tenant_id)
            .ok_or_else(|| GraphError::not_found(key))
    }
}

/// Serves `/v1.0/…`.
pub async fn handle(State(state): State<Shared>, req: Request) -> Response {
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(audit) = req.extensions().get::<AuditHandle>().cloned() else {
        tracing::error!("graph request without an audit context");
        return GraphError::unaudited().into_response();
    };
    match serve(state, audit, req).await {
        Ok(r) => r,
        Err(mut e) => {
            e.client_request_id = client_request_id;
            e.into_response()
        }
    }
}

fn host_base(headers: &HeaderMap, fallback: &str) -> String {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("https://{h}"))
        .unwrap_or_else(|| fallback.to_owned())
}

async fn serve(state: Shared, audit: AuditHandle, req: Request) -> Result<Response, GraphError> {
    let graph_resource = state.graph_resource.clone();
    let principal = match authenticate(&state, req.headers(), &[graph_resource], &audit) {
        Ok((p, _)) => p,
        Err(f) => {
            let message = match f {
                AuthFailure::Missing => "Access token is empty.".to_owned(),
                AuthFailure::Invalid(e) => format!("Access token validation failure: {e}."),
            };
            return Err(GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                message,
            ));
        }
    };
    let query: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
        .map_err(|_| GraphError::bad("The query string is malformed."))?;
    let base = host_base(req.headers(), state.tokens.authority());
    let method = req.method().clone();
    let path = odata::decode_path(req.uri().path().trim_start_matches("/v1.0/"));
    let body = axum::body::to_bytes(req.into_body(), 1024 * 1024)
        .await
        .map_err(|_| GraphError::bad("The request body is too large or could not be read."))?;
    let call = Call {
        state,
        audit,
        principal,
        base,
        query,
    };
    // `applications(appId='…')` addresses an app by application id.
    let path = path.replacen("applications(", "applications/(", 1);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Everything but a read changes the directory with a durable commit.
    if method == Method::GET {
        route(&call, &method, &segments, &body)
    } else {
        crate::blocking::in_place(|| route(&call, &method, &segments, &body))
    }
}

fn route(
    call: &Call,
    method: &Method,
    segments: &[&str],
    body: &Bytes,
) -> Result<Response, GraphError> {
    match (method, segments) {
        (&Method::GET, ["applications"]) => list_apps(call),
        (&Method::POST, ["applications"]) => create_app(call, body),
        (&Method::GET, ["applications", id]) => get_app(call, id),
        (&Method::PATCH, ["applications", id]) => update_app(call, id, body),
        (&Method::DELETE, ["applications", id]) => delete_app(call, id),
        (&Method::POST, ["applications", id, "addPassword"]) => add_password(call, id, body),
        (&Method::POST, ["applications", id, "removePassword"]) => remove_password(call, id, body),
        (&Method::GET, ["servicePrincipals"]) => list_service_principals(call),
        (&Method::GET, ["directory", "deletedItems", "microsoft.graph.application"]) => {
            list_deleted_apps(call)
        }
        (&Method::POST, ["directory", "deletedItems", id, "restore"]) => restore_app(call, id),
        (&Method::GET, ["policies", "defaultAppManagementPolicy"]) => get_policy(call),
        (&Method::PATCH, ["policies", "defaultAppManagementPolicy"]) => update_policy(call, body),
        _ => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "Resource not found for the segment '{}'.",
                segments.first().unwrap_or(&"")
            ),
        )),
    }
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, GraphError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(GraphError::bad("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")),
    }
}

fn password_json(c: &CredentialRow, secret_text: Option<&str>) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": c.display_name,
        "endDateTime": iso(c.end),
        "hint": c.hint,
        "keyId": c.key_id,
        "secretText": secret_text,
        "startDateTime": iso(c.start),
    })
}

fn app_json(call: &Call, app: &AppRow) -> Result<Value, GraphError> {
    let creds = call.state.directory.credentials(&app.object_id)?;
    Ok(json!({
        "id": app.object_id,
        "appId": app.app_id,
        "displayName": app.display_name,
        "createdDateTime": iso(app.created),
        "signInAudience": "AzureADMyOrg",
        "passwordCredentials": creds.iter().map(|c| password_json(c, None)).collect::<Vec<_>>(),
    }))
}

fn with_context(call: &Call, mut v: Value, entity: &str) -> Value {
    v["@odata.context"] = json!(format!("{}/v1.0/$metadata#{entity}", call.base));
    v
}

fn list_apps(call: &Call) -> Result<Response, GraphError> {
    call.allow(actions::APP_READ, call.tenant())?;
    let filter = call.query("$filter").map(parse_filter).transpose()?;
    let name = match &filter {
        Some((field, value)) if field == "displayName" => Some(value.as_str()),
        Some((field, _)) if field == "appId" => None,
        Some((field, _)) => {
            return Err(GraphError::bad(format!(
                "Unsupported filter property '{field}'."
            )))
        }
        None => None,
    };
    let top = match call.query("$top") {
        None => 100,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=999).contains(n))
            .ok_or_else(|| GraphError::bad("Invalid page size specified: '$top' must be 1-999."))?,
    };
    let after = call
        .query("$skiptoken")
        .map(|t| {
            URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| GraphError::bad("Invalid $skiptoken."))
        })
        .transpose()?;
    let mut apps = call.state.directory.list_apps(
        &call.principal.tenant_id,
        name,
        after.as_deref(),
        top + 1,
    )?;
    if let Some((field, value)) = &filter {
        if field == "appId" {
            apps.retain(|a| a.app_id.eq_ignore_ascii_case(value));
        }
    }
    let next = if apps.len() > top {
        apps.truncate(top);
        apps.last().map(|a| {
            let mut link = format!(
                "{}/v1.0/applications?$top={top}&$skiptoken={}",
                call.base,
                URL_SAFE_NO_PAD.encode(&a.object_id)
            );
            if let Some(f) = call.query("$filter") {
                link.push_str("&$filter=");
                link.push_str(&odata::encode(f));
            }
            link
        })
    } else {
        None
    };
    let value = apps
        .iter()
        .map(|a| app_json(call, a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = with_context(call, json!({ "value": value }), "applications");
    if let Some(n) = next {
        out["@odata.nextLink"] = json!(n);
    }
    Ok(Json(out).into_response())
}

fn create_app(call: &Call, body: &Bytes) -> Result<Response, GraphError> {
    call.allow(actions::APP_CREATE, call.tenant())?;
    let map = body_object(body)?;
    let name = map
        .get("displayName")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::bad("Property 'displayName' is required."))?;
    let (app, _sp) = call
        .state
        .directory
        .create_app(&call.principal.tenant_id, name)?;
    call.audit.event(
        "ApplicationCreated",
        call.app_scope(&app).as_str().to_owned(),
    );
    let v = with_context(call, app_json(call, &app)?, "applications/$entity");
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

fn get_app(call: &Call, id: &str) -> Result<Response, GraphError> {
    let app = call.app(id)?;
    call.allow(actions::APP_READ, call.app_scope(&app))?;
    Ok(Json(with_context(
        call,
        app_json(call, &app)?,
        "applications/$entity",
    ))
    .into_response())
}

fn update_app(call: &Call, id: &str, body: &Bytes) -> Result<Response, GraphError> {
    let app = call.app(id)?;
    call.allow(actions::APP_UPDATE, call.app_scope(&app))?;
    let map = body_object(body)?;
    for key in map.keys() {
        if key != "displayName" {
            return Err(GraphError::bad(format!(
                "Property '{key}' cannot be updated."
            )));
        }
    }
    if let Some(name) = map.get("displayName") {
        let name = name
            .as_str()
            .ok_or_else(|| GraphError::bad("Property 'displayName' must be a string."))?;
        call.state.directory.rename_app(&app.object_id, name)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn delete_app(call: &Call, id: &str) -> Result<Response, GraphError> {
    let app = call.app(id)?;
    call.allow(actions::APP_DELETE, call.app_scope(&app))?;
    call.state.directory.delete_app(&app.object_id)?;
    call.audit.event(
        "ApplicationDeleted",
        call.app_scope(&app).as_str().to_owned(),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn add_password(call: &Call, id: &str, body: &Bytes) -> Result<Response, GraphError> {
    let app = call.app(id)?;
    call.allow(actions::APP_CREDENTIALS, call.app_scope(&app))?;
    let map = if body.is_empty() {
        Map::new()
    } else {
        body_object(body)?
    };
    let cred = match map.get("passwordCredential") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(GraphError::bad(
                "Property 'passwordCredential' must be an object.",
            ))
        }
    };
    let display_name = match cred.get("displayName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 256 => Some(s.clone()),
        Some(_) => {
            return Err(GraphError::bad(
                "Property 'displayName' must be a string of at most 256 characters.",
            ))
        }
    };
    let time_field = |key: &str| -> Result<Option<i64>, GraphError> {
        match cred.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_iso(s).map(Some).ok_or_else(|| {
                GraphError::bad(format!(
                    "Property '{key}' is not a valid ISO 8601 date-time."
                ))
            }),
            Some(_) => Err(GraphError::bad(format!(
                "Property '{key}' must be a date-time string."
            ))),
        }
    };
    let start = time_field("startDateTime")?;
    let end = time_field("endDateTime")?;
    let created = call
        .state
        .directory
        .add_password(&app.object_id, display_name, start, end)?;
    call.audit.event(
        "CredentialAdded",
        credential_target(call, &app, &created.credential.key_id),
    );
    let mut v = password_json(&created.credential, Some(created.secret_text.as_str()));
    v["@odata.context"] = json!(format!(
        "{}/v1.0/$metadata#microsoft.graph.passwordCredential",
        call.base
    ));
    Ok(Json(v).into_response())
}

fn remove_password(call: &Call, id: &str, body: &Bytes) -> Result<Response, GraphError> {
    let app = call.app(id)?;
    call.allow(actions::APP_CREDENTIALS, call.app_scope(&app))?;
    let map = body_object(body)?;
    let key_id = map
        .get("keyId")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::bad("Property 'keyId' is required."))?;
    call.state
        .directory
        .remove_password(&app.object_id, key_id)?;
    call.audit
        .event("CredentialRemoved", credential_target(call, &app, key_id));
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The audit target of one password credential (its key id, never its value).
fn credential_target(call: &Call, app: &AppRow, key_id: &str) -> String {
    format!(
        "{}/passwordCredentials/{}",
        call.app_scope(app).as_str(),
        key_id
    )
}

fn list_service_principals(call: &Call) -> Result<Response, GraphError> {
    call.allow(actions::APP_READ, call.tenant())?;
    let filter = call.query("$filter").map(parse_filter).transpose()?;
    let sps = match &filter {
        Some((field, value)) if field == "appId" => call
            .state
            .directory
            .service_principal(value)?
            .into_iter()
            .filter(|sp| sp.tenant_id == call.principal.tenant_id)
            .collect::<Vec<_>>(),
        Some((field, _)) => {
            return Err(GraphError::bad(format!(
                "Unsupported filter property '{field}'."
            )))
        }
        None => {
            let apps =
                call.state
                    .directory
                    .list_apps(&call.principal.tenant_id, None, None, 999)?;
            let mut out = Vec::new();
            for a in apps {
                out.extend(call.state.directory.service_principal(&a.app_id)?);
            }
            out
        }
    };
    let value: Vec<Value> = sps
        .iter()
        .map(|sp| {
            json!({
                "id": sp.object_id,
                "appId": sp.app_id,
                "displayName": sp.display_name,
                "servicePrincipalType": "Application",
                "accountEnabled": true,
                "appOwnerOrganizationId": sp.tenant_id,
            })
        })
        .collect();
    Ok(Json(with_context(
        call,
        json!({ "value": value }),
        "servicePrincipals",
    ))
    .into_response())
}

fn policy_json(call: &Call, p: &AppPolicy) -> Value {
    let restrictions: Vec<Value> = p
        .password_lifetime
        .map(|l| {
            json!({
                "restrictionType": "passwordLifetime",
                "maxLifetime": IsoDuration(l).to_string(),
                "restrictForAppsCreatedAfterDateTime": p.restrict_apps_created_after.map(iso),
            })
        })
        .into_iter()
        .collect();
    with_context(
        call,
        json!({
            "id": "00000000-0000-0000-0000-000000000000",
            "displayName": "Default app management tenant policy",
            "description": "Default tenant policy that enforces app management restrictions on applications and service principals.",
            "isEnabled": p.enabled,
            "applicationRestrictions": {"passwordCredentials": restrictions, "keyCredentials": []},
        }),
        "policies/defaultAppManagementPolicy/$entity",
    )
}

fn get_policy(call: &Call) -> Result<Response, GraphError> {
    call.allow(actions::APP_POLICY_READ, call.tenant())?;
    let p = call.state.directory.app_policy(&call.principal.tenant_id)?;
    Ok(Json(policy_json(call, &p)).into_response())
}

/// `PATCH /policies/defaultAppManagementPolicy`: `isEnabled` and
/// `applicationRestrictions.passwordCredentials` (the `passwordLifetime`
/// restriction) are understood; other restriction types are refused.
fn update_policy(call: &Call, body: &Bytes) -> Result<Response, GraphError> {
    call.allow(actions::APP_POLICY_WRITE, call.tenant())?;
    let map = body_object(body)?;
    let mut p = call.state.directory.app_policy(&call.principal.tenant_id)?;
    if let Some(v) = map.get("isEnabled") {
        p.enabled = v
            .as_bool()
            .ok_or_else(|| GraphError::bad("Property 'isEnabled' must be a boolean."))?;
    }
    if let Some(r) = map.get("applicationRestrictions") {
        let creds = r.get("passwordCredentials").and_then(Value::as_array);
        p.password_lifetime = None;
        p.restrict_apps_created_after = None;
        for c in creds.into_iter().flatten() {
            match c.get("restrictionType").and_then(Value::as_str) {
                Some("passwordLifetime") => {
                    let raw = c
                        .get("maxLifetime")
                        .and_then(Value::as_str)
                        .ok_or_else(|| GraphError::bad("passwordLifetime needs 'maxLifetime'."))?;
                    let d = IsoDuration::parse(raw).map_err(|e| GraphError::bad(e.to_string()))?;
                    p.password_lifetime = Some(d.seconds());
                    p.restrict_apps_created_after =
                        match c.get("restrictForAppsCreatedAfterDateTime") {
                            None | Some(Value::Null) => None,
                            Some(Value::String(t)) => Some(parse_iso(t).ok_or_else(|| {
                                GraphError::bad(
                                    "restrictForAppsCreatedAfterDateTime is not a valid date-time.",
                                )
                            })?),
                            Some(_) => {
                                return Err(GraphError::bad(
                                    "restrictForAppsCreatedAfterDateTime must be a string.",
                                ))
                            }
                        };
                }
                other => {
                    return Err(GraphError::bad(format!(
                        "Unsupported restrictionType '{}': only passwordLifetime is supported.",
                        other.unwrap_or("")
                    )))
                }
            }
        }
    }
    call.state
        .directory
        .set_app_policy(&call.principal.tenant_id, &p)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /directory/deletedItems/microsoft.graph.application`: apps deleted
/// in the last 30 days.
fn list_deleted_apps(call: &Call) -> Result<Response, GraphError> {
    call.allow(actions::APP_READ, call.tenant())?;
    let deleted = call
        .state
        .directory
        .deleted_apps(&call.principal.tenant_id)?;
    let mut value = Vec::new();
    for (app, at) in &deleted {
        let mut v = app_json(call, app)?;
        v["deletedDateTime"] = json!(iso(*at));
        value.push(v);
    }
    Ok(Json(with_context(
        call,
        json!({ "value": value }),
        "directory/deletedItems/microsoft.graph.application",
    ))
    .into_response())
}

/// `POST /directory/deletedItems/{id}/restore`: undoes a delete within 30
/// days; the app's client secrets work again.
fn restore_app(call: &Call, id: &str) -> Result<Response, GraphError> {
    call.allow(
        actions::APP_DELETE,
        Scope::application(&call.principal.tenant_id, &id.to_ascii_lowercase()),
    )?;
    let app = call
        .state
        .directory
        .restore_app(&call.principal.tenant_id, id)?;
    call.audit.event(
        "ApplicationRestored",
        call.app_scope(&app).as_str().to_owned(),
    );
    Ok(Json(with_context(
        call,
        app_json(call, &app)?,
        "directoryObjects/$entity",
    ))
    .into_response())
}

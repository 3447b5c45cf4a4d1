//! The route table and the pure router: from method and path to a route and its path
//! parameter. Each row of [`ROUTES`] is a route's whole specification: method, path, the scope
//! its credential needs, and what serves it (a route function of the extension, with the
//! plan that turns the request into the function's arguments). The pipeline serves from it,
//! the OpenAPI document is checked against it, and the database call is made from it.

use std::sync::OnceLock;

use hyper::{Method, StatusCode};

use crate::plan::{self, Plan};

/// What a credential must grant. The database checks it (the route functions raise 42501);
/// the table says it so the OpenAPI document and the docs can be checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// No credential.
    None,
    Read,
    Write,
    /// Scope admin: a tenant's admin credential reaches its own tenant only.
    Admin,
    /// Scope admin with no tenant: the whole system (tenants, the gateway's metrics).
    SystemAdmin,
    /// Any valid credential, whatever its scopes (a credential revoking itself).
    Any,
}

/// One call of a route function of the extension, `sealstore.route_<function>`.
#[derive(Debug)]
pub struct Call {
    pub function: &'static str,
    /// Reads go to the shared read connections, whose transactions are read-only.
    pub read_only: bool,
    /// The status of a successful answer (204: no body).
    pub success: StatusCode,
    /// The request's path parameter and body as the function's arguments after the token.
    pub plan: Plan,
    statement: OnceLock<String>,
}

impl Call {
    const fn new(function: &'static str, read_only: bool, success: StatusCode, plan: Plan) -> Call {
        Call {
            function,
            read_only,
            success,
            plan,
            statement: OnceLock::new(),
        }
    }

    /// The statement that calls the function with the token and `params` arguments (a route
    /// always passes the same number): `SELECT subject, body FROM sealstore.route_x($1, ...)`.
    pub fn statement(&self, params: usize) -> &str {
        self.statement.get_or_init(|| {
            let placeholders: Vec<String> = (1..=params + 1).map(|i| format!("${i}")).collect();
            format!(
                "SELECT subject, body FROM sealstore.route_{}({})",
                self.function,
                placeholders.join(", ")
            )
        })
    }
}

/// What serves a route.
#[derive(Debug)]
pub enum Target {
    Health,
    Ready,
    OpenApi,
    /// The gateway's counters, once `route_metrics` has accepted the credential.
    Metrics(Call),
    Call(Call),
    /// The change feed: the call checks the credential and the resume point, then the
    /// response streams (`events`).
    Events(Call),
}

#[derive(Debug)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    /// Read by the tests that hold the OpenAPI document and the docs to the table.
    #[cfg_attr(not(test), allow(dead_code))]
    pub scope: Scope,
    pub target: Target,
}

const fn call(function: &'static str, read_only: bool, success: StatusCode, plan: Plan) -> Target {
    Target::Call(Call::new(function, read_only, success, plan))
}

const OK: StatusCode = StatusCode::OK;
const CREATED: StatusCode = StatusCode::CREATED;
const NO_CONTENT: StatusCode = StatusCode::NO_CONTENT;

/// Every route.
pub static ROUTES: [RouteSpec; 19] = [
    RouteSpec {
        method: "GET",
        path: "/healthz",
        scope: Scope::None,
        target: Target::Health,
    },
    RouteSpec {
        method: "GET",
        path: "/readyz",
        scope: Scope::None,
        target: Target::Ready,
    },
    RouteSpec {
        method: "GET",
        path: "/openapi.json",
        scope: Scope::None,
        target: Target::OpenApi,
    },
    RouteSpec {
        method: "GET",
        path: "/metrics",
        scope: Scope::SystemAdmin,
        target: Target::Metrics(Call::new("metrics", true, OK, plan::nothing)),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/collections",
        scope: Scope::Write,
        target: call("create_collection", false, CREATED, plan::create_collection),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/collections/{name}/documents",
        scope: Scope::Write,
        target: call("put_document", false, CREATED, plan::put_document),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/collections/{name}/search",
        scope: Scope::Read,
        target: call("search", true, OK, plan::search),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/documents/{id}",
        scope: Scope::Read,
        target: call("get_document", true, OK, plan::id),
    },
    RouteSpec {
        method: "DELETE",
        path: "/v1/documents/{id}",
        scope: Scope::Write,
        target: call("delete_document", false, NO_CONTENT, plan::id),
    },
    RouteSpec {
        method: "PUT",
        path: "/v1/secrets/{name}",
        scope: Scope::Write,
        target: call("put_secret", false, NO_CONTENT, plan::put_secret),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/secrets/{name}",
        scope: Scope::Read,
        target: call("get_secret", true, OK, plan::name),
    },
    RouteSpec {
        method: "DELETE",
        path: "/v1/secrets/{name}",
        scope: Scope::Write,
        target: call("delete_secret", false, NO_CONTENT, plan::name),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/tenants",
        scope: Scope::SystemAdmin,
        target: call("create_tenant", false, CREATED, plan::create_tenant),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/tenants/{id}/rotate-key",
        scope: Scope::Admin,
        target: call("rotate_tenant_key", false, OK, plan::id),
    },
    RouteSpec {
        method: "DELETE",
        path: "/v1/tenants/{id}",
        scope: Scope::Admin,
        target: call("shred_tenant", false, NO_CONTENT, plan::id),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/tenants/{id}/api-keys",
        scope: Scope::Admin,
        target: call("create_api_key", false, CREATED, plan::create_api_key),
    },
    RouteSpec {
        method: "DELETE",
        path: "/v1/api-keys/{id}",
        scope: Scope::Admin,
        target: call("revoke_api_key", false, NO_CONTENT, plan::id),
    },
    RouteSpec {
        method: "POST",
        path: "/v1/auth/revoke",
        scope: Scope::Any,
        target: call("revoke_self", false, NO_CONTENT, plan::nothing),
    },
    RouteSpec {
        method: "GET",
        path: "/v1/events",
        scope: Scope::Read,
        target: Target::Events(Call::new("subscribe_events", false, OK, plan::nothing)),
    },
];

pub const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The route and its decoded path parameter.
    Found(&'static RouteSpec, Option<String>),
    /// The path exists with other methods: its template (for `Allow`).
    MethodNotAllowed(&'static str),
    NotFound,
    /// A path parameter that is not valid percent-encoded UTF-8.
    BadPath,
}

impl PartialEq for RouteSpec {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for RouteSpec {}

/// Matches a path against the templates; `{x}` takes one non-empty segment.
pub fn resolve(method: &Method, path: &str) -> Resolved {
    let segments: Vec<&str> = path.split('/').collect();
    let mut template_matched = None;
    for spec in &ROUTES {
        let parts: Vec<&str> = spec.path.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut param = None;
        let fits = parts.iter().zip(&segments).all(|(p, s)| {
            if p.starts_with('{') {
                param = Some(*s);
                !s.is_empty()
            } else {
                p == s
            }
        });
        if !fits {
            continue;
        }
        let head_ok = method == Method::HEAD && spec.method == "GET";
        if method.as_str() != spec.method && !head_ok {
            template_matched = Some(spec.path);
            continue;
        }
        let param = match param {
            Some(raw) => match percent_encoding::percent_decode_str(raw).decode_utf8() {
                Ok(p) => Some(p.into_owned()),
                Err(_) => return Resolved::BadPath,
            },
            None => None,
        };
        return Resolved::Found(spec, param);
    }
    template_matched.map_or(Resolved::NotFound, Resolved::MethodNotAllowed)
}

/// The methods a path template answers (the `Allow` header of a 405), GET implying HEAD.
pub fn allowed_methods(template: &str) -> String {
    let mut methods: Vec<&str> = ROUTES
        .iter()
        .filter(|spec| spec.path == template)
        .map(|spec| spec.method)
        .collect();
    if methods.contains(&"GET") {
        methods.push("HEAD");
    }
    methods.join(", ")
}

#[cfg(test)]
mod tests;

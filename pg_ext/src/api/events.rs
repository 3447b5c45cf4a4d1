//! The change feed (`GET /v1/events`): the events that document and collection writes add to
//! `sealstore.events` (in the same statement as the write, see `documents.rs`), and what a
//! gateway needs to stream them. One listening connection per gateway sleeps in
//! `gateway_events_wait` until a writer commits, reads every tenant's new events once
//! (`gateway_events_read`) and hands each to its tenant's subscribers in memory; subscribers
//! cost no database reads per event. A subscriber's credential and resume point are checked by
//! `route_subscribe_events`, its credential again whenever keys or credentials change
//! (`gateway_credentials_valid`). Old events are purged after `sealstore.event_retention`.
//!
//! The cross-tenant functions (`gateway_*`) are granted to the gateway's role alone.

use std::time::Duration;

use pgrx::prelude::*;
use sealstore_core::auth::Credential;
use sealstore_core::error::Kind;
use sealstore_core::events::{self, Position};
use sealstore_core::ids::TenantId;

use crate::runtime::context;
use crate::runtime::credentials;
use crate::runtime::errors::{self, edge, Error, Result};
use crate::runtime::owner::{self, as_owner, changed_rows, owner_row};
use crate::runtime::{feed, gucs, keycache};
use crate::storage::ids::Uuid as _;

/// Where the feed has been purged to: a resume from before it has lost events.
fn horizon() -> Result<Position> {
    let row = owner_row(
        "SELECT xid::text::bigint, id FROM sealstore.event_horizon",
        &[],
        |r| Ok((r.get::<i64>(1)?, r.get::<i64>(2)?)),
    )?;
    Ok(match row {
        Some((Some(xid), Some(id))) => Position {
            xid: xid as u64,
            id,
        },
        _ => Position::default(),
    })
}

/// Checks a subscription: the token (scope read, a tenant) and, when given, the event id to
/// resume after. Returns the subject and a body: `tenant`, `expires_at` (the token's exp in
/// Unix seconds; null for an API key), `resume` (the position, for the gateway) and
/// `too_old` (the events after it were purged). An event id that is not one of this tenant's
/// feed is 22023.
#[pg_extern(volatile, parallel_unsafe)]
fn route_subscribe_events(
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> TableIterator<'static, (name!(subject, String), name!(body, Option<String>))> {
    edge(|| {
        let token = token.ok_or_else(|| errors::null_argument("token must not be NULL"))?;
        let identity = crate::api::auth::authenticate_token(token)?;
        let tenant = context::tenant_with(&["read"])?;
        let expires_at = match sealstore_core::auth::classify(token)? {
            Credential::ApiKey(_) => None,
            Credential::Jwt { .. } => identity
                .claims
                .get("exp")
                .and_then(serde_json::Value::as_u64),
        };
        let (resume, too_old) = match last_event_id {
            None => (None, false),
            Some(text) => {
                let keys = keycache::tenant_keys(&tenant)?;
                let position =
                    events::position_of(text, &tenant, |v| keys.key(v).ok()).map_err(|_| {
                        Error::new(
                            Kind::InvalidArgument,
                            "Last-Event-ID is not an event id of this feed",
                        )
                    })?;
                (Some(position), position < horizon()?)
            }
        };
        let body = serde_json::json!({
            "tenant": tenant.to_string(),
            "expires_at": expires_at,
            "resume": resume.map(|p| serde_json::json!({"xid": p.xid, "id": p.id})),
            "too_old": too_old,
        });
        Ok(TableIterator::once((
            identity.subject.clone(),
            Some(body.to_string()),
        )))
    })
}

/// Sleeps until a transaction that wrote events commits (the count of such commits differs
/// from `events`), keys or credentials change (their epoch differs from `credentials`), or
/// `timeout_ms` passes (at most 60 s); returns both counts. The gateway's listening
/// connection calls it in a loop.
#[pg_extern(volatile, parallel_unsafe, strict)]
fn gateway_events_wait(
    events: i64,
    credentials: i64,
    timeout_ms: i32,
) -> TableIterator<'static, (name!(events, i64), name!(credentials, i64))> {
    edge(|| {
        let timeout = Duration::from_millis(timeout_ms.clamp(0, 60_000) as u64);
        let counts = || (feed::published() as i64, keycache::epoch() as i64);
        feed::wait_until(timeout, || counts() != (events, credentials));
        Ok(TableIterator::once(counts()))
    })
}

/// Up to `max_rows` events after position (`after_xid`, `after_id`), in feed order, of every
/// tenant or of `tenant`. `ready` is false from the first event whose transaction (or an
/// earlier one) may still be running: the gateway hands out events up to there and reads
/// again shortly. A ready event comes with its event id (sealed for its tenant) and its JSON;
/// both are null for a shredded tenant's (skipped, as its keys are gone).
// pgrx reads the columns' names from the signature itself, so it cannot be a type alias.
#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_restricted)]
fn gateway_events_read(
    after_xid: Option<i64>,
    after_id: Option<i64>,
    max_rows: Option<i32>,
    tenant: Option<pgrx::Uuid>,
) -> TableIterator<
    'static,
    (
        name!(xid, i64),
        name!(id, i64),
        name!(tenant, pgrx::Uuid),
        name!(ready, bool),
        name!(event_id, Option<String>),
        name!(kind, Option<String>),
        name!(data, Option<String>),
    ),
> {
    edge(|| {
        let (Some(after_xid), Some(after_id), Some(max_rows)) = (after_xid, after_id, max_rows)
        else {
            return Err(errors::null_argument(
                "after_xid, after_id and max_rows must not be NULL",
            ));
        };
        let limit = i64::from(max_rows.clamp(1, 10_000));
        let sql = format!(
            "SELECT xid::text::bigint, id, tenant_id, \
                    xid < pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()), kind, \
                    pg_catalog.jsonb_build_object('type', kind, 'collection', collection, \
                      'document', document_id, 'metadata', metadata, 'at', at)::text \
             FROM sealstore.events \
             WHERE (xid, id) > ($1::text::xid8, $2) {} \
             ORDER BY xid, id LIMIT $3",
            if tenant.is_some() {
                "AND tenant_id = $4"
            } else {
                ""
            }
        );
        let mut args = vec![after_xid.to_string().into(), after_id.into(), limit.into()];
        if let Some(t) = tenant {
            args.push(t.into());
        }
        let rows = as_owner(|| {
            errors::spi(Spi::connect(|client| {
                client
                    .select(&sql, None, &args)?
                    .map(|r| {
                        Ok((
                            r.get::<i64>(1)?.unwrap_or(0),
                            r.get::<i64>(2)?.unwrap_or(0),
                            r.get::<pgrx::Uuid>(3)?.expect("NOT NULL"),
                            r.get::<bool>(4)?.unwrap_or(false),
                            r.get::<String>(5)?,
                            r.get::<String>(6)?,
                        ))
                    })
                    .collect::<std::result::Result<Vec<_>, pgrx::spi::Error>>()
            }))
        })?;
        let mut out = Vec::with_capacity(rows.len());
        let mut ready_so_far = true;
        for (xid, id, tenant, ready, kind, data) in rows {
            ready_so_far &= ready;
            let event_id = if ready_so_far {
                let t = TenantId::from_uuid(&tenant);
                match keycache::try_tenant_keys(&t)? {
                    Ok(keys) => Some(events::event_id(
                        keys.active_key()?,
                        &t,
                        Position {
                            xid: xid as u64,
                            id,
                        },
                    )?),
                    Err(_) => None,
                }
            } else {
                None
            };
            let (kind, data) = if event_id.is_some() {
                (kind, data)
            } else {
                (None, None)
            };
            out.push((xid, id, tenant, ready_so_far, event_id, kind, data));
        }
        Ok(TableIterator::new(out))
    })
}

/// Where a gateway starting now begins: the last event of the feed that is ready (or the
/// horizon, when none is kept).
#[pg_extern(stable, parallel_restricted)]
fn gateway_events_tail() -> TableIterator<'static, (name!(xid, i64), name!(id, i64))> {
    edge(|| {
        let last = owner_row(
            "SELECT xid::text::bigint, id FROM sealstore.events \
             WHERE xid < pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()) \
             ORDER BY xid DESC, id DESC LIMIT 1",
            &[],
            |r| Ok((r.get::<i64>(1)?, r.get::<i64>(2)?)),
        )?;
        let p = match last {
            Some((Some(xid), Some(id))) => Position {
                xid: xid as u64,
                id,
            },
            _ => horizon()?,
        };
        Ok(TableIterator::once((p.xid as i64, p.id)))
    })
}

/// Deletes the events older than `sealstore.event_retention` (and any placed before them in
/// the feed), in batches, and moves the horizon past them; returns how many went.
#[pg_extern(volatile, parallel_unsafe)]
fn gateway_events_purge() -> i64 {
    edge(|| {
        owner::require_writable()?;
        let retention = f64::from(gucs::EVENT_RETENTION.get());
        let mut total = 0;
        loop {
            let purged = as_owner(|| {
                changed_rows(
                    "WITH h AS (SELECT xid, id FROM \
                                 (SELECT xid, id, at FROM sealstore.events ORDER BY xid, id \
                                  LIMIT 10000) f \
                               WHERE at < now() - make_interval(secs => $1) \
                               ORDER BY xid DESC, id DESC LIMIT 1), \
                          d AS (DELETE FROM sealstore.events e USING h \
                               WHERE (e.xid, e.id) <= (h.xid, h.id) RETURNING 1), \
                          u AS (UPDATE sealstore.event_horizon SET xid = h.xid, id = h.id FROM h \
                               WHERE (h.xid, h.id) > (event_horizon.xid, event_horizon.id)) \
                     SELECT count(*) FROM d",
                    &[retention.into()],
                )
            })?;
            total += purged;
            if purged < 10_000 {
                return Ok(total);
            }
        }
    })
}

/// Which of `tokens` `authenticate()` would accept now (credential refusals are false; other
/// failures, such as a missing master key, are errors). Sets no context. Called in a read-only
/// transaction it records no API key use.
#[pg_extern(stable, parallel_restricted, strict)]
fn gateway_credentials_valid(tokens: Vec<Option<String>>) -> Vec<bool> {
    edge(|| {
        tokens
            .iter()
            .map(|token| match token {
                None => Ok(false),
                Some(t) => match credentials::verify(t) {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind == Kind::CredentialRejected => Ok(false),
                    Err(e) => Err(e),
                },
            })
            .collect()
    })
}

pgrx::extension_sql_file!(
    "../../../sql/events.sql",
    name = "events_schema",
    requires = ["documents_schema", "isolation"],
);

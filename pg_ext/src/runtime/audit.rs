//! The audit log of key lifecycle events (`sealstore.audit_log`): who (the login role, and the
//! subject of the credential the transaction authenticated with), what, when.

use pgrx::prelude::*;

use crate::runtime::context;
use crate::runtime::errors::{self, Result};

/// Appends an audit row inside the caller's transaction; the caller runs it as the owner.
/// When the transaction authenticated a credential, its subject is recorded beside the login
/// role.
pub fn audit(
    action: &str,
    tenant: Option<pgrx::Uuid>,
    mut detail: serde_json::Value,
) -> Result<()> {
    if let (Some(subject), Some(map)) = (context::audit_subject(), detail.as_object_mut()) {
        map.insert("subject".into(), subject.into());
    }
    errors::spi(Spi::run_with_args(
        "INSERT INTO sealstore.audit_log (action, tenant_id, detail) VALUES ($1, $2, $3)",
        &[action.into(), tenant.into(), pgrx::JsonB(detail).into()],
    ))
}

//! The core's id types (`sealstore_core::ids`) as PostgreSQL `uuid` values.

use sealstore_core::ids::{ApiKeyId, CollectionId, DocumentId, TenantId};

/// Conversion of an id from and to the `uuid` datum pgrx reads and writes.
pub trait Uuid: Sized {
    fn from_uuid(u: &pgrx::Uuid) -> Self;
    fn uuid(&self) -> pgrx::Uuid;
}

macro_rules! uuid_id {
    ($($t:ty),*) => {$(
        impl Uuid for $t {
            fn from_uuid(u: &pgrx::Uuid) -> Self {
                <$t>::from_bytes(*u.as_bytes())
            }

            fn uuid(&self) -> pgrx::Uuid {
                pgrx::Uuid::from_bytes(*self.as_bytes())
            }
        }
    )*};
}

uuid_id!(TenantId, CollectionId, DocumentId, ApiKeyId);

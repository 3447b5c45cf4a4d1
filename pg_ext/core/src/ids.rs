//! Ids as distinct types: a tenant's id cannot be passed where a document's is meant. Each is
//! 16 bytes, printed and parsed in one spelling (hyphenated lower-case hex, as PostgreSQL
//! prints a uuid).

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(bytes)
            }

            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }

            /// The canonical spelling only (see the module).
            pub fn parse(s: &str) -> Option<Self> {
                crate::auth::parse_uuid(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&uuid::Uuid::from_bytes(self.0).hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

id_type!(
    /// A tenant: what every key, envelope and row of its data is bound to.
    TenantId
);
id_type!(
    /// A collection of documents.
    CollectionId
);
id_type!(
    /// A document: what its content's and embedding's envelopes are bound to.
    DocumentId
);
id_type!(
    /// An API key (the public half of the key text).
    ApiKeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_in_one_spelling() {
        let text = "6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f";
        let t = TenantId::parse(text).unwrap();
        assert_eq!(t.to_string(), text);
        assert_eq!(format!("{t:?}"), format!("TenantId({text})"));
        assert_eq!(DocumentId::from_bytes(*t.as_bytes()).to_string(), text);
        assert!(TenantId::parse(&text.to_uppercase()).is_none());
        assert!(TenantId::parse(&text.replace('-', "")).is_none());
    }
}

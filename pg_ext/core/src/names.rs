//! The one rule every name a caller gives follows (tenants, collections, secrets, API keys):
//! 1 to 200 characters, none of them a control character.

use crate::error::{Error, Result};

/// What a name names, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameOf {
    Tenant,
    Collection,
    Secret,
    ApiKey,
}

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Refuses a name that breaks the rule (22023), saying which name.
pub fn check_name(of: NameOf, name: &str) -> Result<()> {
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(Error::invalid(match of {
            NameOf::Tenant => "tenant name must be 1 to 200 characters without control characters",
            NameOf::Collection => {
                "collection name must be 1 to 200 characters without control characters"
            }
            NameOf::Secret => "secret name must be 1 to 200 characters without control characters",
            NameOf::ApiKey => "API key name must be 1 to 200 characters without control characters",
        })
        .with_code("bad_name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_1_to_200_characters_without_control_characters() {
        assert!(check_name(NameOf::Secret, "db-password").is_ok());
        assert!(check_name(NameOf::Secret, &"é".repeat(200)).is_ok());
        for bad in ["", "a\nb", "tab\there", "\u{7f}", &"x".repeat(201)] {
            let e = check_name(NameOf::Collection, bad).unwrap_err();
            assert_eq!(e.kind.sqlstate(), "22023");
            assert!(e.message.starts_with("collection name"), "{e}");
        }
    }
}

//! String newtypes that parse on construction: identifiers, names, free text with length bounds.

use serde::{Deserialize, Serialize};

use crate::schema;

/// Declares a string newtype whose only constructor is `TryFrom<String>`, used by serde too,
/// so that no handler ever holds an invalid value; `$schema` states the same rule for the API
/// documents.
macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $check:expr, $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(&value).map(|()| Self(value))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = String;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::try_from(value.to_owned())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::try_from(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        $crate::schema::schema!($name, $schema);
    };
}
pub(crate) use string_newtype;

/// Checks the identifier grammar of the contract: `[A-Za-z0-9_.-]{1,64}`.
pub fn check_identifier(value: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if value.is_empty() || value.len() > 64 || !value.chars().all(ok_char) {
        return Err(format!(
            "{value:?} is not an identifier: 1 to 64 characters of A-Z a-z 0-9 _ . -"
        ));
    }
    Ok(())
}

/// Checks a free text's length in characters (not bytes) and that it is not blank.
pub fn check_text(value: &str, max_chars: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n == 0 || value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if n > max_chars {
        return Err(format!(
            "is {n} characters long, at most {max_chars} allowed"
        ));
    }
    Ok(())
}

/// Checks only that `value` has at most `max_chars` characters (it may be empty).
pub fn check_length(value: &str, max_chars: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n > max_chars {
        return Err(format!(
            "is {n} characters long, at most {max_chars} allowed"
        ));
    }
    Ok(())
}

string_newtype!(
    /// Why an agent declined an offer: at most 200 characters (API.md §6).
    DeclineReason,
    |v| check_length(v, 200),
    schema::short("Why the offer was declined.", 200)
);
string_newtype!(
    /// An agent's note on a completed ticket: at most 2,000 characters (API.md §6).
    Note,
    |v| check_length(v, 2000),
    schema::short("A note for the record.", 2000)
);

string_newtype!(
    /// An agent's id on the roster.
    AgentId,
    check_identifier,
    schema::pattern("An agent's id.", schema::IDENTIFIER, 64)
);
string_newtype!(
    /// A ticket's id, assigned by the dispatcher.
    TicketId,
    check_identifier,
    schema::pattern("A ticket's id.", schema::IDENTIFIER, 64)
);
string_newtype!(
    /// An offer's id, assigned by the dispatcher.
    OfferId,
    check_identifier,
    schema::pattern("An offer's id.", schema::IDENTIFIER, 64)
);
string_newtype!(
    /// The escalation engine's conversation id: 1 to 128 characters.
    ConversationId,
    |v| check_text(v, 128),
    schema::text("The escalation engine's conversation id.", 128)
);
string_newtype!(
    /// A ticket's summary for the agent: 1 to 500 characters.
    Summary,
    |v| check_text(v, 500),
    schema::text("What the customer needs, as the agent sees it in the offer.", 500)
);
string_newtype!(
    /// An agent's name as shown to operators: 1 to 100 characters.
    DisplayName,
    |v| check_text(v, 100),
    schema::text("The name operators see.", 100)
);
string_newtype!(
    /// The name of a geofence (a region): `[a-z0-9_-]{1,64}`; whether it exists is checked
    /// against the loaded file.
    RegionName,
    |v| {
        let ok = !v.is_empty()
            && v.len() <= 64
            && v
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{v:?} is not a region name: 1 to 64 characters of a-z 0-9 _ -"
            ))
        }
    },
    schema::pattern(
        "A geofence of `GEOFENCES_FILE`, by name.",
        "^[a-z0-9_-]{1,64}$",
        64
    )
);

impl AgentId {
    /// A fresh random id with a prefix; used by tests and tools.
    pub fn random(prefix: &str) -> Self {
        Self(format!("{prefix}{}", uuid::Uuid::new_v4().simple()))
    }
}

impl TicketId {
    /// A fresh, unguessable ticket id.
    pub fn generate() -> Self {
        Self(format!("t-{}", uuid::Uuid::new_v4().simple()))
    }
}

impl OfferId {
    /// A fresh, unguessable offer id.
    pub fn generate() -> Self {
        Self(format!("o-{}", uuid::Uuid::new_v4().simple()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_the_grammar() {
        assert!(AgentId::try_from("a-17").is_ok());
        assert!(AgentId::try_from("A_b.c-9").is_ok());
        assert!(AgentId::try_from("x".repeat(64)).is_ok());
        assert!(AgentId::try_from("x".repeat(65)).is_err());
        assert!(AgentId::try_from("").is_err());
        assert!(AgentId::try_from("a/b").is_err());
        assert!(AgentId::try_from("a b").is_err());
        assert!(AgentId::try_from("å").is_err());
    }

    #[test]
    fn texts_count_characters_not_bytes() {
        assert!(DisplayName::try_from("Å".repeat(100)).is_ok());
        assert!(DisplayName::try_from("Å".repeat(101)).is_err());
        assert!(DisplayName::try_from("   ").is_err());
        assert!(Summary::try_from("x".repeat(500)).is_ok());
        assert!(Summary::try_from("x".repeat(501)).is_err());
        assert!(ConversationId::try_from("c".repeat(129)).is_err());
    }

    #[test]
    fn serde_rejects_invalid_values() {
        let bad: Result<AgentId, _> = serde_json::from_str("\"no spaces\"");
        assert!(bad.is_err());
        let good: AgentId = serde_json::from_str("\"a-1\"").expect("valid id");
        assert_eq!(good.as_str(), "a-1");
        assert!(TicketId::generate().as_str().len() <= 64);
    }
}

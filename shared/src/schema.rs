//! The JSON Schema of the values that parse themselves (API.md §2–§4), for the OpenAPI and
//! AsyncAPI documents (API.md §11).
//!
//! The domain's newtypes check their input in `TryFrom`, which no derive can read; each states
//! the same rule here as a schema (a pattern, a length, a range, the list of codes), next to the
//! check, so the published documents say what the services accept.

use utoipa::openapi::schema::{ArrayBuilder, ArrayItems, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};

/// The identifier grammar of API.md §2.
pub const IDENTIFIER: &str = "^[A-Za-z0-9_.-]{1,64}$";

/// A string.
pub fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

/// A string matching an anchored `pattern`, at most `max` characters.
pub fn pattern(description: &str, pattern: &str, max: usize) -> ObjectBuilder {
    string(description)
        .pattern(Some(pattern))
        .min_length(Some(1))
        .max_length(Some(max))
}

/// A free text of 1 to `max` characters, not only white space.
pub fn text(description: &str, max: usize) -> ObjectBuilder {
    pattern(description, r"\S", max)
}

/// A text of at most `max` characters, possibly empty.
pub fn short(description: &str, max: usize) -> ObjectBuilder {
    string(description).max_length(Some(max))
}

/// One of the space-separated `codes`.
pub fn codes(description: &str, codes: &str) -> ObjectBuilder {
    string(description).enum_values(Some(codes.split(' ')))
}

/// An integer in `min..=max`.
pub fn integer(description: &str, min: i64, max: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some(description))
        .minimum(Some(min))
        .maximum(Some(max))
}

/// A number in `min..=max`.
pub fn number(description: &str, min: f64, max: f64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .description(Some(description))
        .minimum(Some(min))
        .maximum(Some(max))
}

/// A point in time: RFC 3339, UTC.
pub fn date_time(description: &str) -> ObjectBuilder {
    string(description).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

/// An array of `items`, at least `min` of them.
pub fn array(description: &str, items: impl Into<ArrayItems>, min: usize) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(items)
        .min_items(Some(min))
        .description(Some(description))
}

/// The schema of a type as a `$ref` into `components/schemas`.
pub fn reference<T: utoipa::ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

/// Implements `utoipa::ToSchema` for a type from a function building its schema.
macro_rules! schema {
    ($name:ident, $build:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let build: fn() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> =
                    || $build.into();
                build()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use schema;

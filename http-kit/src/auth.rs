//! The bearer-token extractor. The verifier comes from `web::Data<TokenVerifier>`.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};
use shared::auth::{Claims, Role, TokenVerifier};
use shared::error::{ClientError, ErrorCode};

use crate::ApiError;

/// A set of roles an endpoint admits.
pub trait Allowed {
    /// Whether `role` may use the endpoint.
    fn allows(role: Role) -> bool;
}

/// Operators only.
#[derive(Debug)]
pub struct Admin;
/// The escalation engine, or operators.
#[derive(Debug)]
pub struct Tickets;
/// Payroll, or operators.
#[derive(Debug)]
pub struct Payroll;
/// Agents (for their own resources only; the handler compares `sub`).
#[derive(Debug)]
pub struct AgentOnly;

impl Allowed for Admin {
    fn allows(role: Role) -> bool {
        role == Role::Admin
    }
}
impl Allowed for Tickets {
    fn allows(role: Role) -> bool {
        matches!(role, Role::Escalation | Role::Admin)
    }
}
impl Allowed for Payroll {
    fn allows(role: Role) -> bool {
        matches!(role, Role::Payroll | Role::Admin)
    }
}
impl Allowed for AgentOnly {
    fn allows(role: Role) -> bool {
        role == Role::Agent
    }
}

/// A verified token whose role is admitted by `R`.
#[derive(Debug)]
pub struct Authenticated<R: Allowed> {
    /// The token's claims.
    pub claims: Claims,
    _roles: PhantomData<R>,
}

/// Takes the token out of an `Authorization: Bearer …` header.
pub fn bearer(req: &HttpRequest) -> Result<Option<String>, ClientError> {
    let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = header.to_str().unwrap_or_default().trim();
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(ClientError::new(
            ErrorCode::MissingToken,
            "Authorization must be `Bearer <token>`",
        )),
    }
}

/// Verifies the request's bearer token and checks its role against `R`.
pub fn authenticate<R: Allowed>(req: &HttpRequest) -> Result<Claims, ClientError> {
    let Some(verifier) = req.app_data::<web::Data<TokenVerifier>>() else {
        tracing::error!("no TokenVerifier registered as app data");
        return Err(ClientError::new(ErrorCode::Internal, "internal error"));
    };
    let token = bearer(req)?.ok_or_else(|| {
        ClientError::new(
            ErrorCode::MissingToken,
            "an Authorization: Bearer token is required",
        )
    })?;
    let claims = verifier.verify(&token)?;
    match claims.role() {
        Some(role) if R::allows(role) => Ok(claims),
        _ => Err(ClientError::new(
            ErrorCode::Forbidden,
            format!("role {:?} may not use this endpoint", claims.role),
        )),
    }
}

impl<R: Allowed> FromRequest for Authenticated<R> {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            authenticate::<R>(req)
                .map(|claims| Self {
                    claims,
                    _roles: PhantomData,
                })
                .map_err(ApiError),
        )
    }
}

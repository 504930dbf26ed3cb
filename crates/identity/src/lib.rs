//! Identity: tenants, app registrations and their client secrets, tenant
//! users and their passwords, access tokens (RS256 JWTs and their JWKS),
//! and the authorization check every request goes through. No HTTP here;
//! the server maps [`TokenError`] to Entra's error JSON and [`Denied`] to
//! each API's 403.

pub mod authz;
pub mod directory;
pub mod token;
pub mod user;

pub use authz::{actions, Authorizer, Denied, Scope};
pub use directory::{AppPolicy, Directory, DirectoryError, NewPassword};
pub use token::{
    Claims, IssuedToken, Principal, PrincipalKind, TokenError, TokenService, VerifyError,
};
pub use user::{NewUser, UserError, UserPatch, Users};

//! Who is asking: the authenticated [`Caller`] of a request (by API token or web session), the
//! client it acts on, and what it may see. Every operation of [`crate::ops`] takes one; the
//! extractor that builds it from a request lives in [`crate::auth`].

use std::net::IpAddr;

use spawnit_model::Id;

use crate::accounts::{Role, SessionRecord};
use crate::error::ApiError;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: String,
    pub client: Id,
    pub role: Role,
    /// The caller's address, for the audit log.
    pub ip: Option<IpAddr>,
    /// The web session, when the caller came with the session cookie rather than a token.
    pub session: Option<SessionRecord>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The client a request acts on: the caller's own, or (admins only) the one asked for.
    pub fn client_for(&self, asked: Option<&str>) -> Result<Id, ApiError> {
        match asked {
            None => Ok(self.client.clone()),
            Some(c) => {
                let id = Id::parse(c).map_err(|e| ApiError::invalid("client", e.to_string()))?;
                if id != self.client && !self.is_admin() {
                    // Another client's objects do not exist for a member.
                    return Err(ApiError::not_found(format!("client {id}")));
                }
                Ok(id)
            }
        }
    }

    /// Whether the caller may see objects of `client`.
    pub fn sees(&self, client: &Id) -> bool {
        self.is_admin() || &self.client == client
    }
}

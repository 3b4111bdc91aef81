//! What a spec says about one operation, as generated constants (`operations::REFRESH_TOKEN`).

/// One operation of a vendor's spec: its id, route, the answers the spec documents, and the wire facts the hooks
/// need. Generated per spec by `cargo xtask codegen` (`<vendor crate>::operations`), so that code and tests name
/// an operation by a constant: a wrong name does not compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The spec's `operationId`, which is also the generated client's method name.
    pub id: &'static str,
    /// The HTTP method, upper case (`POST`).
    pub method: &'static str,
    /// The path under the base URL, as the spec writes it.
    pub path: &'static str,
    /// Every HTTP status the spec documents for this operation.
    pub statuses: &'static [DocumentedStatus],
    /// The content type the vendor documents for a request without a body (`x-empty-body-content-type`).
    pub empty_body_content_type: Option<&'static str>,
    /// Where the answer carries tokens and expiry (`x-token-role`), in the order the spec reaches them: what a
    /// reader needs to keep the tokens when the rest of an answer is not what the spec says.
    pub tokens: &'static [TokenField],
}

/// What a field of an answer carries (`x-token-role` in the spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenRole {
    AccessToken,
    RefreshToken,
    /// The access token's lifetime in seconds.
    ExpiresIn,
    /// When the access token expires: an instant (milliseconds since the epoch, or an RFC 3339 text).
    ExpiresAt,
}

impl TokenRole {
    /// The role's name in specs (`access_token`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::AccessToken => "access_token",
            TokenRole::RefreshToken => "refresh_token",
            TokenRole::ExpiresIn => "expires_in",
            TokenRole::ExpiresAt => "expires_at",
        }
    }
}

/// A field of an answer that carries a token or its expiry: its role and its JSON path (`result_data.access_token`;
/// `data[].token` for a field of every element of an array).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenField {
    pub role: TokenRole,
    pub path: &'static str,
}

/// An HTTP status an operation documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentedStatus {
    pub status: u16,
    /// Whether the generated client decodes this answer's body into a type (the spec gives it a body).
    pub decoded: bool,
    /// The spec's description of this answer.
    pub description: &'static str,
}

impl Operation {
    /// The operation named `id` among `operations` (the generated `operations::ALL`).
    pub fn find(operations: &'static [Operation], id: &str) -> Option<&'static Operation> {
        operations.iter().find(|operation| operation.id == id)
    }

    /// The statuses whose answers the generated client decodes into a type.
    pub fn decoded_statuses(&self) -> impl Iterator<Item = u16> + '_ {
        self.statuses.iter().filter(|s| s.decoded).map(|s| s.status)
    }

    /// The one status whose answer is decoded, where there is exactly one. progenitor's
    /// `Error::InvalidResponsePayload` does not say which status an undecodable answer came with; then it is this.
    pub fn only_decoded_status(&self) -> Option<u16> {
        let mut decoded = self.decoded_statuses();
        match (decoded.next(), decoded.next()) {
            (Some(status), None) => Some(status),
            _ => None,
        }
    }

    /// The paths of the fields that carry `role`, in the spec's order.
    pub fn token_paths(&self, role: TokenRole) -> impl Iterator<Item = &'static str> + '_ {
        self.tokens
            .iter()
            .filter(move |field| field.role == role)
            .map(|field| field.path)
    }

    /// What the spec says of an answer with `status`, if it documents one.
    pub fn documented(&self, status: u16) -> Option<&'static DocumentedStatus> {
        self.statuses.iter().find(|s| s.status == status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: DocumentedStatus = DocumentedStatus {
        status: 200,
        decoded: true,
        description: "the tokens",
    };
    const EXPIRED: DocumentedStatus = DocumentedStatus {
        status: 401,
        decoded: false,
        description: "the token is expired",
    };
    const REFUSED: DocumentedStatus = DocumentedStatus {
        status: 403,
        decoded: true,
        description: "the failure envelope",
    };
    const REFRESH: Operation = Operation {
        id: "refresh_token",
        method: "POST",
        path: "/refresh",
        statuses: &[OK, EXPIRED],
        empty_body_content_type: None,
        tokens: &[
            TokenField {
                role: TokenRole::AccessToken,
                path: "data.access_token",
            },
            TokenField {
                role: TokenRole::AccessToken,
                path: "access_token",
            },
            TokenField {
                role: TokenRole::ExpiresIn,
                path: "data.expires_in",
            },
        ],
    };
    const LOGIN: Operation = Operation {
        id: "login",
        method: "POST",
        path: "/login",
        statuses: &[OK, REFUSED],
        empty_body_content_type: Some("application/json"),
        tokens: &[],
    };
    const ALL: &[Operation] = &[REFRESH, LOGIN];

    #[test]
    fn operations_are_found_by_id_only() {
        assert_eq!(Operation::find(ALL, "login"), Some(&LOGIN));
        assert_eq!(Operation::find(ALL, "refresh_token"), Some(&REFRESH));
        assert_eq!(Operation::find(ALL, "refresh"), None);
    }

    #[test]
    fn the_only_decoded_status_is_known_only_when_there_is_one() {
        assert_eq!(REFRESH.decoded_statuses().collect::<Vec<_>>(), [200]);
        assert_eq!(REFRESH.only_decoded_status(), Some(200));
        assert_eq!(LOGIN.decoded_statuses().collect::<Vec<_>>(), [200, 403]);
        assert_eq!(LOGIN.only_decoded_status(), None);
        let none = Operation {
            statuses: &[EXPIRED],
            ..REFRESH
        };
        assert_eq!(none.only_decoded_status(), None);
    }

    #[test]
    fn token_paths_are_listed_by_role_in_the_specs_order() {
        let access: Vec<&str> = REFRESH.token_paths(TokenRole::AccessToken).collect();
        assert_eq!(access, ["data.access_token", "access_token"]);
        let expiry: Vec<&str> = REFRESH.token_paths(TokenRole::ExpiresIn).collect();
        assert_eq!(expiry, ["data.expires_in"]);
        assert_eq!(REFRESH.token_paths(TokenRole::RefreshToken).count(), 0);
        let names: Vec<&str> = [
            TokenRole::AccessToken,
            TokenRole::RefreshToken,
            TokenRole::ExpiresIn,
            TokenRole::ExpiresAt,
        ]
        .iter()
        .map(|r| r.as_str())
        .collect();
        assert_eq!(
            names,
            ["access_token", "refresh_token", "expires_in", "expires_at"]
        );
    }

    #[test]
    fn documented_statuses_carry_their_description() {
        assert_eq!(
            REFRESH.documented(401).map(|s| s.description),
            Some("the token is expired")
        );
        assert_eq!(REFRESH.documented(403), None);
    }
}

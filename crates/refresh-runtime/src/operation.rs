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
    };
    const LOGIN: Operation = Operation {
        id: "login",
        method: "POST",
        path: "/login",
        statuses: &[OK, REFUSED],
        empty_body_content_type: Some("application/json"),
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
    fn documented_statuses_carry_their_description() {
        assert_eq!(
            REFRESH.documented(401).map(|s| s.description),
            Some("the token is expired")
        );
        assert_eq!(REFRESH.documented(403), None);
    }
}

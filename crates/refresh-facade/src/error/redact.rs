//! Keeping the request's secrets out of vendor text (some vendors echo parameters in their messages).

/// Replaces the request's secrets in vendor text.
pub(crate) struct Redactor<'a> {
    secrets: Vec<&'a str>,
}

impl<'a> Redactor<'a> {
    /// Shortest text taken for a secret: shorter "secrets" would redact ordinary words; real tokens are long.
    const SHORTEST_SECRET: usize = 6;

    pub(crate) fn new(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        Redactor {
            secrets: secrets
                .into_iter()
                .filter(|s| s.len() >= Self::SHORTEST_SECRET)
                .collect(),
        }
    }

    /// A redactor that knows no secret (for answers to requests that carried none).
    #[cfg(test)]
    pub(crate) const fn none() -> Self {
        Redactor {
            secrets: Vec::new(),
        }
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret, "[redacted]")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redactor_scrubs_secrets_but_not_short_words() {
        let redactor = Redactor::new(["tok-123456", "ab", "abcdef"]);
        assert_eq!(
            redactor.redact("bad token tok-123456 (ab) abcdef"),
            "bad token [redacted] (ab) [redacted]"
        );
        assert_eq!(
            Redactor::new(["abcde"]).redact("abcde"),
            "abcde",
            "five characters are not taken for a secret"
        );
    }
}

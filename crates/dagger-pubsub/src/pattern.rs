//! Channel names and subscription patterns.
//!
//! Channel names are dot-separated segments (`orders.eu.created`). A pattern
//! may use `*` for exactly one segment (`orders.*.created`) and `>` as its
//! last segment for one or more trailing segments (`orders.>`).

/// Why a channel name or pattern is malformed, or `None` when it is fine.
fn problem(name: &str, allow_wildcards: bool) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    let segments: Vec<&str> = name.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        if seg.is_empty() {
            return Some(format!("segment {} is empty", i + 1));
        }
        if seg.chars().any(char::is_whitespace) {
            return Some(format!("segment `{seg}` contains whitespace"));
        }
        let wild = *seg == "*" || *seg == ">";
        if wild && !allow_wildcards {
            return Some(format!("wildcard `{seg}` is only allowed in patterns"));
        }
        if *seg == ">" && i + 1 != segments.len() {
            return Some("`>` must be the last segment".into());
        }
        if !wild && (seg.contains('*') || seg.contains('>')) {
            return Some(format!(
                "segment `{seg}` mixes a wildcard with text; wildcards must be whole segments"
            ));
        }
    }
    None
}

/// Why `channel` is not a valid channel name to publish to, if it is not.
pub(crate) fn channel_problem(channel: &str) -> Option<String> {
    problem(channel, false)
}

/// A compiled subscription or publication pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact,
    Segments { segments: Vec<Segment>, tail: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Any,
    Literal(String),
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if let Some(p) = problem(text, true) {
            return Err(p);
        }
        let is_exact = !text.split('.').any(|s| s == "*" || s == ">");
        let kind = if is_exact {
            Kind::Exact
        } else {
            let mut segments: Vec<Segment> = Vec::new();
            let mut tail = false;
            for seg in text.split('.') {
                match seg {
                    ">" => tail = true,
                    "*" => segments.push(Segment::Any),
                    s => segments.push(Segment::Literal(s.to_string())),
                }
            }
            Kind::Segments { segments, tail }
        };
        Ok(Self {
            text: text.to_string(),
            kind,
        })
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `channel` matches.
    pub(crate) fn matches(&self, channel: &str) -> bool {
        match &self.kind {
            Kind::Exact => self.text == channel,
            Kind::Segments { segments, tail } => {
                let mut parts = channel.split('.');
                for seg in segments {
                    match (seg, parts.next()) {
                        (_, None) => return false,
                        (Segment::Any, Some(_)) => {}
                        (Segment::Literal(l), Some(p)) if l == p => {}
                        _ => return false,
                    }
                }
                if *tail {
                    parts.next().is_some()
                } else {
                    parts.next().is_none()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, c: &str) -> bool {
        Pattern::parse(p).unwrap().matches(c)
    }

    #[test]
    fn star_matches_exactly_one_segment() {
        assert!(m("orders.*", "orders.created"));
        assert!(!m("orders.*", "orders"));
        assert!(!m("orders.*", "orders.eu.created"));
        assert!(m("orders.*.created", "orders.eu.created"));
        assert!(!m("orders.*.created", "orders.eu.updated"));
    }

    #[test]
    fn tail_matches_one_or_more_segments() {
        assert!(m("orders.>", "orders.created"));
        assert!(m("orders.>", "orders.eu.created"));
        assert!(!m("orders.>", "orders"));
        assert!(!m("orders.>", "invoices.created"));
        assert!(m(">", "anything.at.all"));
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        assert!(m("orders", "orders"));
        assert!(!m("orders", "orders.created"));
        assert!(!m("orders", "order"));
    }

    #[test]
    fn malformed_patterns_and_channels_are_explained() {
        assert_eq!(Pattern::parse("").unwrap_err(), "it is empty");
        assert_eq!(Pattern::parse("a..b").unwrap_err(), "segment 2 is empty");
        assert_eq!(
            Pattern::parse("a.>.b").unwrap_err(),
            "`>` must be the last segment"
        );
        assert_eq!(
            Pattern::parse("or*").unwrap_err(),
            "segment `or*` mixes a wildcard with text; wildcards must be whole segments"
        );
        assert_eq!(
            channel_problem("orders.*").as_deref(),
            Some("wildcard `*` is only allowed in patterns")
        );
        assert_eq!(channel_problem("orders.created"), None);
    }
}

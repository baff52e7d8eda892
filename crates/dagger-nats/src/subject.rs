//! Channel names and patterns as NATS subjects, and durable consumer names.
//!
//! Dagger channel patterns use NATS's own wildcards (`*` one segment, `>`
//! the rest), so a channel or pattern `p` is subject `<prefix>.p` as is.

/// Why `s` is not a valid channel name (or pattern, with `wildcards`).
pub(crate) fn problem(s: &str, wildcards: bool) -> Option<String> {
    if s.is_empty() {
        return Some("it is empty".into());
    }
    let tokens: Vec<&str> = s.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Some(format!("segment {} is empty", i + 1));
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Some(format!("segment `{t}` contains whitespace"));
        }
        let wild = *t == "*" || *t == ">";
        if wild && !wildcards {
            return Some(format!("segment `{t}` is a wildcard"));
        }
        if !wild && (t.contains('*') || t.contains('>')) {
            return Some(format!(
                "segment `{t}` mixes a wildcard with other characters"
            ));
        }
        if *t == ">" && i + 1 != tokens.len() {
            return Some("`>` must be the last segment".into());
        }
    }
    None
}

/// Whether channel `channel` matches `pattern`.
pub(crate) fn matches(pattern: &str, channel: &str) -> bool {
    let mut c = channel.split('.');
    for p in pattern.split('.') {
        match (p, c.next()) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(_)) => {}
            (lit, Some(seg)) if lit == seg => {}
            _ => return false,
        }
    }
    c.next().is_none()
}

/// Whether some channel matches both patterns.
pub(crate) fn intersect(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(x), Some(y)) if x == "*" || y == "*" || x == y => {}
            _ => return false,
        }
    }
}

/// The durable consumer of `agent`'s subscription `pattern`: the same in
/// every process, so a restarted process (or another replica of the agent)
/// continues it. Readable characters are kept; a hash of the exact pair keeps
/// names that sanitize alike apart.
pub(crate) fn consumer_name(agent: &str, pattern: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(48)
            .collect()
    };
    let hash = [agent.as_bytes(), &[0], pattern.as_bytes()]
        .concat()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{}__{}__{:08x}", clean(agent), clean(pattern), hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_follows_nats_wildcards() {
        assert!(matches("orders.*", "orders.new"));
        assert!(!matches("orders.*", "orders.new.eu"));
        assert!(matches("orders.>", "orders.new.eu"));
        assert!(!matches("orders.>", "orders"));
        assert!(!matches("orders.new", "orders"));
    }

    #[test]
    fn intersection_of_patterns() {
        assert!(intersect("orders.*", "orders.new"));
        assert!(intersect("*.new", "orders.*"));
        assert!(intersect(">", "a.b.c"));
        assert!(!intersect("orders.*", "orders.a.b"));
        assert!(!intersect("orders.new", "billing.>"));
        assert!(!intersect("orders", "orders.>"));
    }

    #[test]
    fn consumer_names_are_stable_valid_and_distinct() {
        let a = consumer_name("news writer", "news.>");
        assert_eq!(a, consumer_name("news writer", "news.>"));
        assert!(a.starts_with("news_writer__news___"), "{a}");
        assert!(!a.contains(['.', '*', '>', ' ']));
        assert_ne!(a, consumer_name("news.writer", "news.>"));
    }

    #[test]
    fn problems_name_the_segment() {
        assert_eq!(problem("a..b", true).unwrap(), "segment 2 is empty");
        assert_eq!(
            problem("a.>.b", true).unwrap(),
            "`>` must be the last segment"
        );
        assert_eq!(problem("a.*", false).unwrap(), "segment `*` is a wildcard");
        assert!(problem("orders.*.>", true).is_none());
    }
}

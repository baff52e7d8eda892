//! A DOT writer whose output always parses: every id and label is quoted and
//! escaped, whatever characters it holds.

use std::fmt::Write as _;

/// Quotes and escapes `s` as a DOT string id. Backslashes, quotes, newlines
/// and carriage returns are escaped; everything else (braces, unicode) is
/// safe inside quotes.
pub fn escape_dot_id(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            // Other control characters are not meaningful in a label.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds a `digraph` statement by statement.
#[derive(Debug, Clone)]
pub struct DotWriter {
    out: String,
}

impl DotWriter {
    /// Starts a digraph named `name`.
    pub fn new(name: &str) -> Self {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {} {{", escape_dot_id(name));
        Self { out }
    }

    /// Adds a graph attribute (`rankdir`, `label`, ...).
    pub fn graph_attr(&mut self, key: &str, value: &str) -> &mut Self {
        let _ = writeln!(
            self.out,
            "  {}={};",
            escape_dot_id(key),
            escape_dot_id(value)
        );
        self
    }

    /// Sets default node attributes.
    pub fn node_defaults(&mut self, attrs: &[(&str, &str)]) -> &mut Self {
        let _ = writeln!(self.out, "  node{};", attr_list(attrs));
        self
    }

    /// Adds a node with attributes.
    pub fn node(&mut self, id: &str, attrs: &[(&str, &str)]) -> &mut Self {
        let _ = writeln!(self.out, "  {}{};", escape_dot_id(id), attr_list(attrs));
        self
    }

    /// Adds an edge `from -> to` with attributes.
    pub fn edge(&mut self, from: &str, to: &str, attrs: &[(&str, &str)]) -> &mut Self {
        let _ = writeln!(
            self.out,
            "  {} -> {}{};",
            escape_dot_id(from),
            escape_dot_id(to),
            attr_list(attrs)
        );
        self
    }

    /// Closes the graph and returns the text.
    pub fn finish(mut self) -> String {
        self.out.push_str("}\n");
        self.out
    }
}

fn attr_list(attrs: &[(&str, &str)]) -> String {
    if attrs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{}={}", escape_dot_id(k), escape_dot_id(v)))
        .collect();
    format!(" [{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_are_escaped() {
        assert_eq!(escape_dot_id(r#"a"b"#), r#""a\"b""#);
        assert_eq!(escape_dot_id("a\\"), r#""a\\""#);
        assert_eq!(escape_dot_id("x\ny"), r#""x\ny""#);
        assert_eq!(escape_dot_id("}{"), r#""}{""#);
    }

    #[test]
    fn writer_emits_statements() {
        let mut w = DotWriter::new("g");
        w.graph_attr("rankdir", "LR");
        w.node("a", &[("label", "A")]).edge("a", "b", &[]);
        let dot = w.finish();
        assert_eq!(
            dot,
            "digraph \"g\" {\n  \"rankdir\"=\"LR\";\n  \"a\" [\"label\"=\"A\"];\n  \"a\" -> \"b\";\n}\n"
        );
    }
}

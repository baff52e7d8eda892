//! The fast first reading of a workflow file: a tree without positions built
//! straight from the YAML parser's events, for documents that use only plain
//! strings, quoted and block strings, lists and mappings (what generated and
//! most hand-written workflows are). Anything else (numbers, booleans, nulls,
//! tags, anchors and aliases, directives, more than one document, deep
//! nesting, a syntax error) makes it give up, and the loader reads the file
//! with `serde-saphyr` instead, which decides exactly as before. Whatever
//! this reader accepts, `serde-saphyr` reads to the same tree.

use super::{MAX_NESTING_DEPTH, MAX_YAML_NODES, YNode, YValue};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
use std::borrow::Cow;

/// An open list or mapping (with the key waiting for its value).
enum Open {
    Seq(Vec<YNode>),
    Map(Vec<(YNode, YNode)>, Option<YNode>),
}

/// The tree of `text`, or `None` when it holds anything this reader leaves
/// to `serde-saphyr` (see the module documentation).
pub(super) fn read(text: &str) -> Option<YNode> {
    // Below the configured limit, so `serde-saphyr` reports too-deep files.
    let max_depth = MAX_NESTING_DEPTH.saturating_sub(2);
    let mut open: Vec<Open> = Vec::new();
    let mut root: Option<YNode> = None;
    let mut nodes = 0usize;
    let mut in_document = false;
    for item in Parser::new_from_str(text) {
        let (event, _span) = item.ok()?;
        let value = match event {
            Event::StreamStart | Event::DocumentEnd => continue,
            Event::DocumentStart(_, None) if !in_document => {
                in_document = true;
                continue;
            }
            Event::StreamEnd => break,
            Event::Scalar(text, style, 0, None) => YValue::Str(string(text, style)?),
            Event::SequenceStart(_, 0, None) | Event::MappingStart(_, 0, None)
                if open.len() >= max_depth =>
            {
                return None;
            }
            Event::SequenceStart(_, 0, None) => {
                open.push(Open::Seq(Vec::new()));
                continue;
            }
            Event::MappingStart(_, 0, None) => {
                open.push(Open::Map(Vec::new(), None));
                continue;
            }
            Event::SequenceEnd => match open.pop()? {
                Open::Seq(items) => YValue::Seq(items),
                Open::Map(..) => return None,
            },
            Event::MappingEnd => match open.pop()? {
                Open::Map(entries, None) => YValue::Map(entries),
                Open::Map(_, Some(_)) | Open::Seq(_) => return None,
            },
            _ => return None,
        };
        nodes += 1;
        if nodes > MAX_YAML_NODES {
            return None;
        }
        let node = YNode::plain(value);
        match open.last_mut() {
            None if root.is_none() => root = Some(node),
            None => return None,
            Some(Open::Seq(items)) => items.push(node),
            Some(Open::Map(entries, waiting)) => match waiting.take() {
                None => *waiting = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    if open.is_empty() { root } else { None }
}

/// A scalar that YAML certainly reads as a string, or `None`.
fn string(text: Cow<'_, str>, style: ScalarStyle) -> Option<String> {
    match style {
        ScalarStyle::Plain if is_plain_word(&text) => Some(text.into_owned()),
        ScalarStyle::Plain => None,
        _ => Some(text.into_owned()),
    }
}

/// True when a plain scalar cannot be a null, boolean or number: it starts
/// with a letter and is none of the words YAML 1.1 or 1.2 give a meaning.
fn is_plain_word(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "nan", "inf", "infinity",
    ];
    text.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && !WORDS.iter().any(|w| text.eq_ignore_ascii_case(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(node: &YNode) -> String {
        match &node.value {
            YValue::Str(s) => format!("{s:?}"),
            YValue::Seq(items) => {
                let inner: Vec<String> = items.iter().map(shape).collect();
                format!("[{}]", inner.join(","))
            }
            YValue::Map(entries) => {
                let inner: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}:{}", shape(k), shape(v)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            other => other.describe().to_string(),
        }
    }

    #[test]
    fn reads_strings_lists_and_mappings_like_serde_saphyr() {
        let text = "name: x\nnodes:\n  - id: 'a'\n    dependencies: [b, \"c d\"]\n    description: |\n      two\n      lines\n";
        let fast = read(text).unwrap();
        let slow = super::super::parse(text).unwrap();
        assert_eq!(shape(&fast), shape(&slow));
        assert!(fast.pos.is_none());
    }

    #[test]
    fn leaves_everything_else_to_serde_saphyr() {
        for text in [
            "a: 1\n",
            "a: true\n",
            "a: yes\n",
            "a: null\n",
            "a: ~\n",
            "a:\n",
            "a: .inf\n",
            "a: -x\n",
            "a: !!str x\n",
            "a: &k x\nb: *k\n",
            "%YAML 1.1\n---\na: x\n",
            "a: x\n---\nb: y\n",
            "a: [x\n",
            "",
            &"a: [".repeat(40),
        ] {
            assert!(read(text).is_none(), "{text:?}");
        }
    }
}

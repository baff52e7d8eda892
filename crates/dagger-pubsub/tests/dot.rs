//! DOT output: agents, channels and counts, always syntactically valid.

mod common;

use common::{Behaviour, TestAgent};
use dagger_core::BoxError;
use dagger_pubsub::{CancellationToken, Message, PubSubConfig, PubSubContext, PubSubExecutor};
use serde_json::json;

/// A small checker for the DOT subset DotWriter emits: every token outside a
/// quoted string is punctuation or a keyword, quotes balance, escapes are
/// legal, and braces/brackets nest.
fn assert_valid_dot(dot: &str) {
    let body = dot.strip_prefix("digraph ").expect("starts with digraph");
    let mut chars = body.chars().peekable();
    let mut depth_brace = 0i32;
    let mut depth_bracket = 0i32;
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some('\\') => {
                        let e = chars.next().expect("escape at end");
                        assert!(
                            matches!(e, '"' | '\\' | 'n' | 'r' | 'l'),
                            "bad escape \\{e}"
                        );
                    }
                    Some('"') => break,
                    Some('\n') => panic!("raw newline inside a quoted id"),
                    Some(_) => {}
                    None => panic!("unterminated string"),
                }
            },
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            '-' => assert_eq!(chars.next(), Some('>'), "lone '-'"),
            '=' | ';' | ',' | ' ' | '\n' => {}
            c if c.is_ascii_alphabetic() => {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphabetic() {
                        word.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                assert!(
                    matches!(word.as_str(), "node" | "edge" | "graph"),
                    "bare word {word}"
                );
            }
            other => panic!("unexpected character {other:?} outside quotes"),
        }
        assert!(depth_brace >= 0 && depth_bracket >= 0);
    }
    assert_eq!((depth_brace, depth_bracket), (0, 0));
}

struct Relay;

#[async_trait::async_trait]
impl Behaviour for Relay {
    async fn on(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        ctx.publish("out.\"quoted\"", m.payload.clone()).await?;
        Ok(())
    }
}

#[tokio::test]
async fn dot_shows_agents_channels_and_counts_and_escapes_hostile_names() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    TestAgent::new("relay\\agent", &["in.*"], &["out.>"], Relay).register(&ex);
    TestAgent::recorder("sink \"x\"", &["out.>"]).register(&ex);

    let before = ex.to_dot();
    assert_valid_dot(&before);
    assert!(before.contains("\"agent:relay\\\\agent\""), "{before}");
    assert!(
        before.contains("\"channel:in.*\""),
        "declared patterns appear before any traffic"
    );

    for i in 0..3 {
        ex.publish("in.a", json!(i)).await.unwrap();
    }
    ex.run(CancellationToken::new()).await.unwrap();
    let dot = ex.to_dot();
    assert_valid_dot(&dot);
    assert!(
        dot.contains("in.a\\npublished 3 | delivered 3 | dead-lettered 0"),
        "{dot}"
    );
    assert!(
        dot.contains("out.\\\"quoted\\\"\\npublished 3 | delivered 3 | dead-lettered 0"),
        "{dot}"
    );
    // Subscription edge from the concrete channel, publication edge to the pattern.
    assert!(
        dot.contains("\"channel:in.a\" -> \"agent:relay\\\\agent\""),
        "{dot}"
    );
    assert!(
        dot.contains("\"agent:relay\\\\agent\" -> \"channel:out.>\""),
        "{dot}"
    );
    assert!(dot.contains("processed 3"));
}

#[test]
fn the_checker_rejects_broken_dot() {
    let broken =
        std::panic::catch_unwind(|| assert_valid_dot("digraph \"g\" {\n  \"a\"b\" ;\n}\n"));
    assert!(broken.is_err());
}

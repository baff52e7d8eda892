//! A YAML document as a tree of positioned values, parsed once with
//! `serde-saphyr` under strict budgets, and a serde `Deserializer` over that
//! tree so typed fields are read with serde's own checks while every error
//! keeps the position of the value that caused it.
//!
//! The loader reads a file through [`parse_plain`] first: a private fast
//! reader ([`events`]) builds the tree straight from the parser's events
//! when the document is simple enough, `serde-saphyr` otherwise. Both
//! readers live here; nothing outside this module sees the second one.

mod events;

use crate::error::LoadIssueKind;
use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{DuplicateKeyPolicy, MessageFormatter, Spanned};
use std::cell::Cell;
use std::fmt;

/// Largest input the loader reads, in bytes.
pub const MAX_INPUT_BYTES: usize = 32 * 1024 * 1024;
/// Deepest nesting of lists and mappings accepted. A workflow needs 5 levels
/// (workflow, nodes, node, inputs, input); the rest is for literal values.
/// The bound also bounds the recursion of parsing, so hostile nesting fails
/// with an error instead of exhausting the stack.
pub const MAX_NESTING_DEPTH: usize = 32;
/// Most YAML nodes (scalars, lists, mappings) in one document.
pub const MAX_YAML_NODES: usize = 2_000_000;
/// Most events an alias may replay in one document (anchor bombs).
pub const MAX_ALIAS_REPLAY_EVENTS: usize = 100_000;

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// A value and where it is in the source.
#[derive(Debug)]
pub(crate) struct YNode {
    pub(crate) pos: Option<Pos>,
    /// Byte range of a scalar in the source, to read a number's spelling back as text.
    span: Option<(usize, usize)>,
    pub(crate) value: YValue,
}

/// The value of a [`YNode`].
#[derive(Debug)]
pub(crate) enum YValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<YNode>),
    Map(Vec<(YNode, YNode)>),
}

impl YValue {
    /// What the value is, for messages (`a list`, `a string`, ...).
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::Null => "nothing (null)",
            Self::Bool(_) => "a boolean",
            Self::Int(_) | Self::UInt(_) => "an integer",
            Self::Float(_) => "a number",
            Self::Str(_) => "a string",
            Self::Seq(_) => "a list",
            Self::Map(_) => "a mapping",
        }
    }
}

/// The source text a tree was parsed from, and whether reading the tree
/// needed a position it does not have.
///
/// A tree from [`parse_plain`] has no positions; the loader reads it first
/// (the common, valid case) and only when that finds a problem, or needs
/// the spelling of a number, parses again with [`parse`] and reads again.
pub(crate) struct Source<'a> {
    text: &'a str,
    lacks_span: Cell<bool>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            lacks_span: Cell::new(false),
        }
    }

    /// True when a scalar's spelling was asked for and its node had no span.
    pub(crate) fn lacked_span(&self) -> bool {
        self.lacks_span.get()
    }
}

impl YNode {
    /// A node without a position (see [`Source`]).
    pub(crate) fn plain(value: YValue) -> Self {
        Self {
            pos: None,
            span: None,
            value,
        }
    }

    /// The text of a scalar: the string itself, or the source spelling of a
    /// number or boolean (so `version: 1.10` reads as `"1.10"`).
    pub(crate) fn scalar_text<'a>(&'a self, src: &'a Source<'a>) -> Option<&'a str> {
        match &self.value {
            YValue::Str(s) => Some(s),
            YValue::Bool(_) | YValue::Int(_) | YValue::UInt(_) | YValue::Float(_) => {
                let Some((start, len)) = self.span else {
                    src.lacks_span.set(true);
                    return None;
                };
                src.text.get(start..start.checked_add(len)?)
            }
            _ => None,
        }
    }
}

fn pos_of(loc: serde_saphyr::Location) -> Option<Pos> {
    let (line, column) = (loc.line(), loc.column());
    (line > 0).then(|| Pos {
        line: usize::try_from(line).unwrap_or(usize::MAX),
        column: usize::try_from(column).unwrap_or(usize::MAX),
    })
}

impl<'de> Deserialize<'de> for YNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<YValue>::deserialize(d)?;
        let loc = spanned.referenced;
        let span = match (loc.span().byte_offset(), loc.span().byte_len()) {
            (Some(off), Some(len)) if len > 0 => {
                usize::try_from(off).ok().zip(usize::try_from(len).ok())
            }
            _ => None,
        };
        Ok(Self {
            pos: pos_of(loc),
            span,
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for YValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(YValueVisitor::<true>)
    }
}

/// A [`YNode`] read without positions: asking `serde_saphyr` for a
/// `Spanned` value per node costs most of the parse, and positions are only
/// needed to report problems.
struct PlainNode(YNode);

impl<'de> Deserialize<'de> for PlainNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(YNode::plain(
            d.deserialize_any(YValueVisitor::<false>)?,
        )))
    }
}

/// Builds a [`YValue`]; its children are [`YNode`]s with positions when
/// `SPANNED`, [`PlainNode`]s otherwise.
struct YValueVisitor<const SPANNED: bool>;

impl<const SPANNED: bool> YValueVisitor<SPANNED> {
    fn element<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<Option<YNode>, A::Error> {
        if SPANNED {
            seq.next_element::<YNode>()
        } else {
            Ok(seq.next_element::<PlainNode>()?.map(|n| n.0))
        }
    }

    fn key<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<YNode>, A::Error> {
        if SPANNED {
            map.next_key::<YNode>()
        } else {
            Ok(map.next_key::<PlainNode>()?.map(|n| n.0))
        }
    }

    fn value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<YNode, A::Error> {
        if SPANNED {
            map.next_value::<YNode>()
        } else {
            Ok(map.next_value::<PlainNode>()?.0)
        }
    }
}

impl<'de, const SPANNED: bool> Visitor<'de> for YValueVisitor<SPANNED> {
    type Value = YValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<YValue, E> {
        Ok(YValue::Null)
    }
    fn visit_none<E>(self) -> Result<YValue, E> {
        Ok(YValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<YValue, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<YValue, E> {
        Ok(YValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<YValue, E> {
        Ok(YValue::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<YValue, E> {
        Ok(YValue::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<YValue, E> {
        Ok(YValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<YValue, E> {
        Ok(YValue::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<YValue, E> {
        Ok(YValue::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<YValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = Self::element(&mut seq)? {
            items.push(item);
        }
        Ok(YValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YValue, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = Self::key(&mut map)? {
            let value = Self::value(&mut map)?;
            entries.push((key, value));
        }
        Ok(YValue::Map(entries))
    }
}

/// Parses `text` into a tree with a position on every node, or the one
/// problem that stops parsing.
pub(crate) fn parse(text: &str) -> Result<YNode, Box<(Option<Pos>, LoadIssueKind)>> {
    parse_as::<YNode>(text)
}

/// Parses `text` into a tree without positions (see [`Source`]): straight
/// from the parser's events when the document is simple enough
/// ([`events`]), with `serde-saphyr` otherwise; `None` when it
/// cannot, [`parse`] then tells why.
pub(crate) fn parse_plain(text: &str) -> Option<YNode> {
    if text.len() > MAX_INPUT_BYTES {
        return None;
    }
    events::read(text).or_else(|| parse_as::<PlainNode>(text).ok().map(|n| n.0))
}

fn parse_as<T: for<'de> Deserialize<'de>>(
    text: &str,
) -> Result<T, Box<(Option<Pos>, LoadIssueKind)>> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(Box::new((
            None,
            LoadIssueKind::TooLarge {
                size: text.len() as u64,
                limit: MAX_INPUT_BYTES as u64,
            },
        )));
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_NESTING_DEPTH;
    budget.flow_nesting_limit = MAX_NESTING_DEPTH;
    budget.max_nodes = MAX_YAML_NODES;
    budget.max_events = 4 * MAX_YAML_NODES;
    budget.max_documents = 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_REPLAY_EVENTS;
    options.alias_limits.max_replay_stack_depth = MAX_NESTING_DEPTH;
    // Repeated keys reach our walker, which reports each one and goes on.
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<T>(text, options)
        .map_err(|e| Box::new(describe_error(&e)))
}

fn describe_error(err: &serde_saphyr::Error) -> (Option<Pos>, LoadIssueKind) {
    let pos = err.location().and_then(pos_of);
    let mut inner = err;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    let kind = match inner {
        serde_saphyr::Error::Budget { breach, .. } => {
            LoadIssueKind::LimitExceeded(describe_breach(breach))
        }
        serde_saphyr::Error::ExternalMessage { source, .. }
            if matches!(
                &**source,
                serde_saphyr::ExternalMessageSource::Parser(scan)
                    if matches!(scan.kind(), serde_saphyr::granit_parser::ErrorKind::RecursionLimitExceeded)
            ) =>
        {
            LoadIssueKind::LimitExceeded(format!("nesting deeper than {MAX_NESTING_DEPTH} levels"))
        }
        serde_saphyr::Error::AliasReplayCounterOverflow { .. }
        | serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. } => {
            LoadIssueKind::LimitExceeded(format!(
                "aliases expand to more than {MAX_ALIAS_REPLAY_EVENTS} values (an anchor bomb?)"
            ))
        }
        other => {
            let text = serde_saphyr::DefaultMessageFormatter.format_message(other);
            // The message may quote input; keep it on one line.
            LoadIssueKind::Syntax(
                text.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect(),
            )
        }
    };
    (pos, kind)
}

fn describe_breach(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Depth { .. } => {
            format!("nesting deeper than {MAX_NESTING_DEPTH} levels")
        }
        BudgetBreach::Nodes { .. } => format!("more than {MAX_YAML_NODES} YAML values"),
        BudgetBreach::Events { .. } => format!("more than {} parser events", 4 * MAX_YAML_NODES),
        BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. } => {
            "too many anchors or aliases".to_string()
        }
        BudgetBreach::Documents { .. } => {
            "more than one YAML document; a workflow file holds exactly one".to_string()
        }
        other => format!("{other:?}"),
    }
}

/// The error of deserializing from a [`YNode`]: serde's message, the position
/// of the innermost value involved, and the serde error kinds we act on.
#[derive(Debug)]
pub(crate) struct DeError {
    pub(crate) message: String,
    pub(crate) pos: Option<Pos>,
    pub(crate) kind: DeErrorKind,
}

/// Serde error kinds the loader reports in its own words.
#[derive(Debug)]
pub(crate) enum DeErrorKind {
    Other,
    UnknownField { field: String, expected: String },
}

impl DeError {
    fn at(mut self, node: &YNode) -> Self {
        if self.pos.is_none() {
            self.pos = node.pos;
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            message: msg.to_string(),
            pos: None,
            kind: DeErrorKind::Other,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self {
            message: format!("unknown field `{field}`"),
            pos: None,
            kind: DeErrorKind::UnknownField {
                field: field.to_string(),
                expected: expected_list(expected),
            },
        }
    }
}

/// `` `a`, `b`, `c` `` for messages.
pub(crate) fn expected_list(fields: &[&str]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    quoted.join(", ")
}

/// Deserializes typed values out of a [`YNode`].
#[derive(Clone, Copy)]
pub(crate) struct NodeDe<'a> {
    node: &'a YNode,
    src: &'a Source<'a>,
}

impl<'a> NodeDe<'a> {
    pub(crate) fn new(node: &'a YNode, src: &'a Source<'a>) -> Self {
        Self { node, src }
    }
}

impl<'de> IntoDeserializer<'de, DeError> for NodeDe<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let src = self.src;
        let result = match &self.node.value {
            YValue::Null => visitor.visit_unit(),
            YValue::Bool(b) => visitor.visit_bool(*b),
            YValue::Int(i) => visitor.visit_i64(*i),
            YValue::UInt(u) => visitor.visit_u64(*u),
            YValue::Float(x) => visitor.visit_f64(*x),
            YValue::Str(s) => visitor.visit_str(s),
            YValue::Seq(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(|n| NodeDe::new(n, src)));
                visitor
                    .visit_seq(&mut seq)
                    .and_then(|v| seq.end().map(|()| v))
            }
            YValue::Map(entries) => {
                let mut map = MapDeserializer::new(
                    entries
                        .iter()
                        .map(|(k, v)| (NodeDe::new(k, src), NodeDe::new(v, src))),
                );
                visitor
                    .visit_map(&mut map)
                    .and_then(|v| map.end().map(|()| v))
            }
        };
        result.map_err(|e| e.at(self.node))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            YValue::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(self.node))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.scalar_text(self.src) {
            Some(text) => visitor
                .visit_str::<DeError>(text)
                .map_err(|e| e.at(self.node)),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.at(self.node))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let src = self.src;
        match &self.node.value {
            YValue::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            YValue::Map(entries) if entries.len() == 1 => {
                let map = MapDeserializer::new(
                    entries
                        .iter()
                        .map(|(k, v)| (NodeDe::new(k, src), NodeDe::new(v, src))),
                );
                visitor.visit_enum(MapAccessDeserializer::new(map))
            }
            _ => self.deserialize_any(visitor),
        }
        .map_err(|e| e.at(self.node))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct ignored_any
    }
}

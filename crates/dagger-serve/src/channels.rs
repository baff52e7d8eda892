//! Pub/Sub channels of the message log: each channel with its message
//! count, and one channel's subscribers (committed offset, messages behind)
//! and messages newest first; on the dead-letter channel, each letter's
//! reason. As pages and under `/api/`.

use crate::data::{PREVIEW_CHARS, RUNS_PER_PAGE, format_time, node_window};
use crate::error::{ApiError, PageError, RequestError};
use crate::pages::{self, enc};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use dagger_core::store::{MessageLog, MessageRecord};
use maud::html;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

type Shared = State<Arc<AppState>>;

/// The channel Pub/Sub publishes dead letters to (`dagger_pubsub::DEAD_LETTER_CHANNEL`).
const DEAD_LETTER_CHANNEL: &str = "dead_letter";

/// `?limit=&offset=` of a channel's messages (offset counts from the newest).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MessagesParams {
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Debug, Serialize)]
struct ChannelRow {
    name: String,
    messages: u64,
}

/// A subscriber of a channel: the offset it has committed and how many
/// messages it has yet to handle.
#[derive(Debug, Serialize)]
struct SubscriberRow {
    name: String,
    committed: u64,
    behind: u64,
}

/// The subscribers that have committed an offset on `channel`, by name.
async fn subscribers(
    log: &dyn MessageLog,
    channel: &str,
    last: u64,
) -> Result<Vec<SubscriberRow>, RequestError> {
    Ok(log
        .subscribers(channel)
        .await?
        .into_iter()
        .map(|(name, committed)| SubscriberRow {
            name,
            committed,
            behind: last.saturating_sub(committed),
        })
        .collect())
}

/// A message as listed; dead letters carry their reason.
#[derive(Debug, Serialize)]
struct MessageRow {
    offset: u64,
    message_id: String,
    source: Option<String>,
    timestamp: i64,
    payload_preview: String,
    /// For a dead letter: its reason, agent, detail and original channel.
    dead_letter: Option<Value>,
}

fn log(state: &AppState) -> Result<Arc<dyn MessageLog>, RequestError> {
    state
        .messages
        .clone()
        .ok_or(RequestError::NoStore("message"))
}

async fn list(state: &AppState) -> Result<Vec<ChannelRow>, RequestError> {
    let log = log(state)?;
    let mut rows = Vec::new();
    for name in log.channels().await? {
        let messages = log.last_offset(&name).await?;
        rows.push(ChannelRow { name, messages });
    }
    Ok(rows)
}

fn short(text: &str) -> String {
    let mut out: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().nth(PREVIEW_CHARS).is_some() {
        out.push('…');
    }
    out
}

fn row(channel: &str, m: MessageRecord) -> MessageRow {
    let dead_letter = (channel == DEAD_LETTER_CHANNEL).then(|| {
        let p = &m.payload;
        let detail = p
            .get("error")
            .cloned()
            .or_else(|| p.get("violation").and_then(|v| v.get("message")).cloned())
            .or_else(|| p.get("limit").map(|l| json!(format!("depth limit {l}"))));
        json!({
            "reason": p.get("reason"),
            "agent": p.get("agent"),
            "detail": detail,
            "original_channel": p.get("original").and_then(|o| o.get("channel")),
        })
    });
    MessageRow {
        offset: m.offset,
        message_id: m.message_id.to_string(),
        source: m.source,
        timestamp: m.timestamp,
        payload_preview: short(&m.payload.to_string()),
        dead_letter,
    }
}

/// A page of `channel`'s messages, newest first.
struct ChannelPage {
    rows: Vec<MessageRow>,
    /// The newest offset (= the number of messages).
    total: u64,
    offset: usize,
    limit: usize,
    subscribers: Vec<SubscriberRow>,
}

/// A page of `channel`'s messages, newest first, with its subscribers.
async fn messages(
    state: &AppState,
    channel: &str,
    p: MessagesParams,
) -> Result<ChannelPage, RequestError> {
    let (offset, limit) = node_window(&crate::data::NodePaging {
        node_offset: p.offset,
        node_limit: p.limit.or(Some(RUNS_PER_PAGE)),
    })?;
    let log = log(state)?;
    let last = log.last_offset(channel).await?;
    if last == 0 && !log.channels().await?.iter().any(|c| c == channel) {
        return Err(RequestError::NoRoute(format!("/channels/{channel}")));
    }
    // Offsets are dense from 1: the page ends `offset` below the newest.
    let newest = last.saturating_sub(offset as u64);
    let oldest = newest.saturating_sub(limit as u64 - 1).max(1);
    let mut rows: Vec<MessageRow> = if newest == 0 {
        Vec::new()
    } else {
        log.read_from(channel, oldest, (newest - oldest + 1) as usize)
            .await?
            .into_iter()
            .map(|m| row(channel, m))
            .collect()
    };
    rows.reverse();
    Ok(ChannelPage {
        rows,
        total: last,
        offset,
        limit,
        subscribers: subscribers(log.as_ref(), channel, last).await?,
    })
}

/// `GET /api/channels`
pub(crate) async fn api_list(State(state): Shared) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "channels": list(&state).await? })))
}

/// `GET /api/channels/{name}`
pub(crate) async fn api_channel(
    State(state): Shared,
    Path(name): Path<String>,
    Query(p): Query<MessagesParams>,
) -> Result<Json<Value>, ApiError> {
    let ChannelPage {
        rows,
        total,
        offset,
        limit,
        subscribers,
    } = messages(&state, &name, p).await?;
    let next = (((offset + limit) as u64) < total).then_some(offset + limit);
    Ok(Json(json!({
        "channel": name, "messages_total": total, "offset": offset, "limit": limit,
        "next_offset": next, "subscribers": subscribers, "messages": rows,
    })))
}

/// `GET /channels`
pub(crate) async fn page_list(State(state): Shared) -> Result<Html<String>, PageError> {
    let rows = list(&state).await?;
    let body = html! {
        h1 { "Channels" }
        p.note { "Channels of the durable message log; a channel's page lists its subscribers (those that have committed an offset)." }
        @if rows.is_empty() { p.empty { "No channel has a stored message." } } @else {
            table {
                thead { tr { th { "Channel" } th { "Messages" } } }
                tbody {
                    @for c in &rows {
                        tr {
                            td.mono {
                                a href={ "/channels/" (enc(&c.name)) } { (c.name) }
                                @if c.name == DEAD_LETTER_CHANNEL { " " span.badge.s-Failed { "dead letters" } }
                            }
                            td { (c.messages) }
                        }
                    }
                }
            }
        }
    };
    Ok(pages::page(&state, "Channels", "Channels", body))
}

/// `GET /channels/{name}`
pub(crate) async fn page_channel(
    State(state): Shared,
    Path(name): Path<String>,
    Query(p): Query<MessagesParams>,
) -> Result<Html<String>, PageError> {
    let ChannelPage {
        rows,
        total,
        offset,
        limit,
        subscribers,
    } = messages(&state, &name, p).await?;
    let dead = name == DEAD_LETTER_CHANNEL;
    let link = |o: usize| format!("/channels/{}?offset={o}&limit={limit}", enc(&name));
    let field = |v: &Option<Value>, k: &str| {
        v.as_ref()
            .and_then(|d| d.get(k))
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .filter(|s| s != "null")
            .unwrap_or_default()
    };
    let body = html! {
        h1 { "Channel " span.mono { (name) } }
        h2 { "Subscribers" }
        @if subscribers.is_empty() { p.empty { "No subscriber has committed an offset here." } } @else {
            table.subscribers {
                thead { tr { th { "Subscriber" } th { "Committed offset" } th { "Behind" } } }
                tbody {
                    @for sub in &subscribers {
                        tr { td.mono { (sub.name) } td { (sub.committed) } td { (sub.behind) } }
                    }
                }
            }
        }
        h2 { "Messages" }
        p { (total) " message(s), newest first." }
        table.nodes {
            thead { tr {
                th { "Offset" } th { "Message" } th { "Source" } th { "Time (UTC)" }
                @if dead { th { "Reason" } th { "Agent" } th { "Detail" } th { "Channel" } }
                th { "Payload" }
            } }
            tbody {
                @for m in &rows {
                    tr {
                        td { (m.offset) }
                        td.mono { (m.message_id) }
                        td { (m.source.as_deref().unwrap_or("")) }
                        td { (format_time(m.timestamp)) }
                        @if dead {
                            td { (field(&m.dead_letter, "reason")) }
                            td { (field(&m.dead_letter, "agent")) }
                            td.er { (field(&m.dead_letter, "detail")) }
                            td.mono { (field(&m.dead_letter, "original_channel")) }
                        }
                        td.mono.out { (m.payload_preview) }
                    }
                }
            }
        }
        nav.pager {
            @if offset > 0 { a rel="prev" href=(link(offset.saturating_sub(limit))) { "← Newer" } }
            @if ((offset + limit) as u64) < total { a rel="next" href=(link(offset + limit)) { "Older →" } }
        }
    };
    Ok(pages::page(
        &state,
        &format!("Channel {name}"),
        "Channels",
        body,
    ))
}

//! Procedural macros of Dagger: [`macro@action`], [`macro@task_agent`] and
//! [`macro@pubsub_agent`].
//!
//! Use them through the `dagger` facade (`use dagger::prelude::*;`), not
//! directly: generated code names every path through `::dagger::__private`,
//! and the facade pins this crate to its own version.
//!
//! Every attribute takes `key = "string"` arguments. JSON Schema strings are
//! parsed and checked while the macro expands, so an invalid schema is a
//! compile error pointing at the string. All mistakes in one attribute are
//! reported together, and the annotated item is always emitted unchanged, so
//! one mistake does not cascade into errors at every use.
//!
//! On a function, each macro keeps the function as written (still callable)
//! and generates next to it a unit type named after the function in
//! CamelCase (`research_agent` -> `ResearchAgent`), implementing the trait:
//!
//! | macro | generated | register one | register all |
//! |---|---|---|---|
//! | `#[action]` on `fn add_numbers` | `AddNumbers`: `NodeAction` | `registry.register(Arc::new(AddNumbers))` | `dagger::register_all_actions(&registry)` |
//! | `#[task_agent]` on `fn research_agent` | `ResearchAgent`: `TaskAgent` | `registry.register_agent(Arc::new(ResearchAgent::new()))` | `dagger::register_all_task_agents(&registry)` |
//! | `#[task_agent]` on `impl T` | `impl TaskAgent for T` | `registry.register_agent(Arc::new(value))` | — (needs a value of `T`) |
//! | `#[pubsub_agent]` on `fn enricher` | `Enricher`: `PubSubAgent` | `executor.register_agent(Arc::new(Enricher))` | `dagger::register_all_pubsub_agents(&executor)` |
//!
//! Each generated type has `NAME` (the registered name) and `new()`; a
//! pub/sub agent's also has `SUBSCRIBE` and `PUBLISH`. Schemas are compiled
//! once, on first use. "Register all" finds every annotated function of the
//! program, wherever it is defined (through `inventory`).

mod action;
mod attr;
mod codegen;
mod errors;
mod pubsub_agent;
mod schema;
mod shape;
mod task_agent;

use proc_macro::TokenStream;

/// Turns an `async fn` into a DAG Flow action (a `NodeAction`).
///
/// Arguments: `name` (the name workflows use in `action:`; by default the function's name),
/// `description`, `input_schema` and `output_schema` (JSON Schema text,
/// checked at compile time; the coordinator validates the node's resolved
/// inputs and its outputs against them), `crate` (the path of the `dagger`
/// facade, default `::dagger`).
///
/// Two function forms:
/// - `async fn f(ctx: &NodeCtx) -> Result<NodeOutput, E>`: full access to the
///   node's context.
/// - `async fn f(input: T) -> Result<U, E>` (or no parameter): `T:
///   Deserialize` is read from the node's resolved inputs as an object (a
///   mismatch fails the node permanently with an error naming the input), and
///   `U: Serialize` becomes the node's outputs, normally an object whose keys
///   are the node's declared outputs.
///
/// In both, `E: Into<BoxError>` (`String`, `&str`, any `std::error::Error`).
///
/// See the `dagger` crate's documentation for a compiled example.
#[proc_macro_attribute]
pub fn action(attr: TokenStream, item: TokenStream) -> TokenStream {
    action::expand(attr.into(), item.into()).into()
}

/// Turns an `async fn`, or an inherent `impl` block with an `async fn
/// execute`, into a Task Agent (a `TaskAgent`).
///
/// Arguments: `name` (required: the agent name tasks are assigned to),
/// `description`, `input_schema`, `output_schema` (checked at compile time;
/// the task manager validates task input and output against them), `crate`.
///
/// Function forms, returning `Result<T, E>` with `T: Into<TaskOutcome>`
/// (`serde_json::Value` is completed output) and `E: Into<BoxError>`:
/// - `async fn f(input: Value, task_id: &str, job_id: &str, task_manager: &TaskManager)`
/// - `async fn f(input: Value, ctx: &TaskContext)`
///
/// On `impl T { async fn execute(&self, input: Value, task_id: &str, job_id: &str) ... }`
/// (optionally followed by `task_manager: &TaskManager`, or taking
/// `(&self, input: Value, ctx: &TaskContext)`) it implements `TaskAgent` for
/// `T`; register a value with `registry.register_agent(Arc::new(value))`.
#[proc_macro_attribute]
pub fn task_agent(attr: TokenStream, item: TokenStream) -> TokenStream {
    task_agent::expand(attr.into(), item.into()).into()
}

/// Turns an `async fn(ctx: &PubSubContext, message: &Message) -> Result<(), E>`
/// into a Pub/Sub agent (a `PubSubAgent`).
///
/// Arguments: `name` (required), `description`, `subscribe` (comma-separated
/// channels or patterns such as `"orders.new, audit.*"`), `publish`
/// (comma-separated channels or patterns the agent may publish to), `input_schema`,
/// `output_schema`, `crate`.
#[proc_macro_attribute]
pub fn pubsub_agent(attr: TokenStream, item: TokenStream) -> TokenStream {
    pubsub_agent::expand(attr.into(), item.into()).into()
}

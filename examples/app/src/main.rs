//! The example application's command: the whole `dagger` CLI over the
//! actions and task agent of this crate (see `lib.rs`).

// Links the library, whose `#[action]`s and `#[task_agent]` register themselves.
use dagger_example_app as _;

fn main() -> std::process::ExitCode {
    dagger::cli::run()
}

//! The `dagger` command: the facade's `dagger::cli::run()` with the built-in
//! actions and nothing more (the same function a user's binary calls to get
//! every subcommand over its own actions).

fn main() -> std::process::ExitCode {
    dagger::cli::run()
}

//! Compile-time behaviour of the macros (trybuild): accepted forms compile,
//! mistakes give the errors in the `.stderr` files next to each case.
//! Regenerate those with `TRYBUILD=overwrite cargo test -p dagger --test ui`.

#[test]
fn action() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/action/pass/*.rs");
    t.compile_fail("tests/ui/action/fail/*.rs");
}

#[test]
fn task_agent() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/task_agent/pass/*.rs");
    t.compile_fail("tests/ui/task_agent/fail/*.rs");
}

#[test]
fn pubsub_agent() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pubsub_agent/pass/*.rs");
    t.compile_fail("tests/ui/pubsub_agent/fail/*.rs");
}

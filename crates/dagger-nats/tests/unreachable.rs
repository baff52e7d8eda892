//! Connecting to a server that is not there fails at once with an error
//! naming the URL; a bad configuration is refused before connecting.

use dagger_nats::{NatsBridge, NatsConfig, NatsError};

#[tokio::test]
async fn an_unreachable_server_is_named_in_the_error() {
    // Port 1 is reserved (tcpmux) and nothing listens there.
    let url = "nats://127.0.0.1:1";
    let err = NatsBridge::connect(url, NatsConfig::new("S"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NatsError::Connect { url: u, .. } if u == url),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("cannot connect to NATS at nats://127.0.0.1:1: "),
        "{err}"
    );
}

#[tokio::test]
async fn bad_configuration_is_refused_naming_the_value() {
    let cases = [
        (
            NatsConfig::new("a.b"),
            "invalid NATS bridge configuration: stream name `a.b` must be non-empty and free of whitespace, `.`, `*`, `>`, `/` and `\\`",
        ),
        (
            NatsConfig::new("S").subject_prefix("x.*"),
            "invalid NATS bridge configuration: subject_prefix `x.*`: segment `*` is a wildcard",
        ),
        (
            NatsConfig::new("S")
                .subject_prefix("x")
                .dead_letter_prefix("x.dl"),
            "invalid NATS bridge configuration: subject_prefix `x` and dead_letter_prefix `x.dl` overlap",
        ),
        (
            NatsConfig::new("S").max_age(std::time::Duration::from_secs(60)),
            "invalid NATS bridge configuration: max_age must not be shorter than duplicate_window",
        ),
        (
            NatsConfig::new("S").max_deliver(0),
            "invalid NATS bridge configuration: max_deliver must be at least 1",
        ),
    ];
    for (config, message) in cases {
        // Refused before any connection attempt, so the unreachable URL never matters.
        let err = NatsBridge::connect("nats://127.0.0.1:1", config)
            .await
            .unwrap_err();
        assert!(matches!(err, NatsError::InvalidConfig(_)), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
}

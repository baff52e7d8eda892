//! Guards for mutating requests: a per-process CSRF token, an optional
//! server token, and the rule that a server reachable beyond this machine
//! needs that token.

use crate::error::{RequestError, ServeError};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::TryRng;
use std::net::SocketAddr;
use std::sync::Arc;

/// The shortest `--token` accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Name of the cookie `/login` sets to the server token.
pub(crate) const TOKEN_COOKIE: &str = "dagger_token";

/// Header carrying the CSRF token on API requests.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Checks that serving on `addr` is safe: an address other than loopback
/// needs a token, and a token must be at least [`MIN_TOKEN_LEN`] characters.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    if let Some(t) = token
        && t.chars().count() < MIN_TOKEN_LEN
    {
        return Err(ServeError::WeakToken {
            len: t.chars().count(),
            min: MIN_TOKEN_LEN,
        });
    }
    if token.is_some_and(|t| {
        !t.bytes()
            .all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b))
    }) {
        return Err(ServeError::TokenCharacters);
    }
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(ServeError::TokenRequired { addr });
    }
    Ok(())
}

/// 32 random bytes from the operating system, as hex.
pub(crate) fn random_token() -> Result<String, ServeError> {
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| ServeError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares in time independent of where the inputs differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a mutating request may proceed. With a server token, the request
/// must carry it (bearer header or the login cookie); a bearer header is
/// never attached by a browser on its own, so it also stands in for the CSRF
/// token. Otherwise the CSRF token must come as the `csrf` form field or the
/// `X-CSRF-Token` header.
pub(crate) fn check_mutation(
    state: &AppState,
    headers: &HeaderMap,
    form_csrf: Option<&str>,
) -> Result<(), RequestError> {
    if let Some(token) = &state.auth_token {
        if bearer(headers).is_some_and(|b| same_secret(b, token)) {
            return Ok(());
        }
        if !cookie(headers, TOKEN_COOKIE).is_some_and(|c| same_secret(c, token)) {
            return Err(RequestError::Unauthorized);
        }
    }
    let sent = form_csrf.or_else(|| headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()));
    match sent {
        Some(s) if same_secret(s, &state.csrf) => Ok(()),
        _ => Err(RequestError::Csrf),
    }
}

/// Whether `host` (a Host header value) names this machine.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// On a loopback server without a token, refuses requests whose `Host` is
/// not a loopback name: a web page cannot reach it through DNS rebinding.
pub(crate) async fn loopback_host_only(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if state.restrict_host {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if let Some(h) = host
            && !is_loopback_host(h)
        {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                format!("this server answers only to loopback host names, not `{h}`"),
            )
                .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let err = check_bind(any, None).unwrap_err();
        assert!(matches!(err, ServeError::TokenRequired { addr } if addr == any));
        assert!(err.to_string().contains("--token"), "{err}");
        assert!(check_bind(any, Some("0123456789abcdef")).is_ok());
        assert!(check_bind("127.0.0.1:1".parse().unwrap(), None).is_ok());
        assert!(check_bind("[::1]:1".parse().unwrap(), None).is_ok());
        assert!(matches!(
            check_bind(any, Some("short")),
            Err(ServeError::WeakToken { len: 5, min: 16 })
        ));
        assert!(matches!(
            check_bind(any, Some("0123456789abcdef;x")),
            Err(ServeError::TokenCharacters)
        ));
        assert!(matches!(
            check_bind(any, Some("0123456789 abcdef")),
            Err(ServeError::TokenCharacters)
        ));
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn host_names() {
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:80",
            "localhost.evil",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; dagger_token=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, TOKEN_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}

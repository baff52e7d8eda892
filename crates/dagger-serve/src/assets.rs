//! The stylesheet and script, compiled into the binary.

use axum::http::header;
use axum::response::IntoResponse;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

/// `GET /assets/style.css`
pub(crate) async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        STYLE,
    )
}

/// `GET /assets/app.js`
pub(crate) async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        SCRIPT,
    )
}

/// The status colours of graph nodes as an SVG `<style>` element, for an
/// SVG served on its own (the page's stylesheet gives them otherwise).
pub(crate) fn svg_status_style() -> String {
    let rules: String = STYLE
        .lines()
        .filter(|l| l.starts_with("g."))
        .collect::<Vec<_>>()
        .join("\n");
    format!("<style>\n{rules}\n</style>\n")
}

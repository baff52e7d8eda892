//! The example application's `serve` in a real browser (headless Chromium
//! over WebDriver): a run of the app's own action, recorded by the app's
//! library code and failed, is resumed from its run page and completes,
//! executed by the server with the app's actions.
//!
//! Skips (with the reason printed) when `chromium` or `chromedriver` is not
//! installed; on Debian: `apt-get install -y chromium chromium-driver`.
//! `CHROMIUM` and `CHROMEDRIVER` override the binaries' paths.

#[path = "../../../crates/dagger-serve/tests/webdriver/mod.rs"]
mod webdriver;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn executions(trace: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_the_apps_action_resumes_from_the_run_page() {
    let Some(browser) = webdriver::headless().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("runs.db").display());
    let gate = dir.path().join("gate");
    let trace = dir.path().join("trace");
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");

    // The app's library code records a run that fails at `stats` (no gate yet).
    let out = Command::new(env!("CARGO_BIN_EXE_record_run"))
        .arg(workflows.join("gated.yaml"))
        .args([db.as_str(), "page-run", &format!("gate={}", gate.display())])
        .env("EXAMPLE_APP_TRACE", &trace)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&gate, "open").unwrap();

    // The app's `serve`, on a loopback port.
    let port = webdriver::free_port();
    let addr = format!("127.0.0.1:{port}");
    let _server = webdriver::Killed(
        Command::new(env!("CARGO_BIN_EXE_dagger-example-app"))
            .args(["serve", "--db", &db, "--addr", &addr, "--workflows"])
            .arg(&workflows)
            .env("EXAMPLE_APP_TRACE", &trace)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "serve never listened on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let s = &browser.session;
    let wait = Duration::from_secs(20);

    // The run page shows the failed run; resume it there.
    s.goto(&format!("http://{addr}/runs/page-run"))
        .await
        .unwrap();
    let status = s.find("#run-status", wait).await.unwrap();
    assert_eq!(s.text(&status).await.unwrap(), "Failed");
    let resume = s
        .find("form[action$=\"/resume\"] button", wait)
        .await
        .unwrap();
    s.click(&resume).await.unwrap();
    s.wait_until(
        "var e = document.getElementById('run-status'); return !!e && e.textContent === 'Completed'",
        wait,
    )
    .await
    .unwrap();
    assert_eq!(s.find_all("g.gnode.s-Completed").await.unwrap().len(), 2);
    browser.session.quit().await.unwrap();

    // The server ran the app's `slow_stats` again; `parse` did not rerun.
    assert_eq!(
        executions(&trace),
        [
            "parse_numbers parse",
            "slow_stats stats",
            "slow_stats stats"
        ]
    );
}

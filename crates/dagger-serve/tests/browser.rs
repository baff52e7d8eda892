//! End to end in a real browser: headless Chromium, driven over WebDriver
//! (chromedriver), against the server on 127.0.0.1. It opens the runs list,
//! opens a run waiting for a human, sees its graph, approves the node, and
//! watches the run complete live (no page load after the approval), then
//! saves a screenshot to `target/serve-e2e.png`.
//!
//! Skips (with the reason printed) when `chromium` or `chromedriver` is not
//! installed; on Debian: `apt-get install -y chromium chromium-driver`.
//! `CHROMIUM` and `CHROMEDRIVER` override the binaries' paths.

mod common;
mod webdriver;

use common::*;
use dagger_coord::Coordinator;
use dagger_core::{Cache, RunId, RunStatus};
use dagger_dag_flow::{DagExecutor, load_yaml_str};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WORKFLOW: &str = r#"
name: release_notes
description: Draft, wait for a human, publish, announce.
tags: [e2e, human]
nodes:
  - id: draft
    action: echo
    inputs:
      - name: title
        value: Release notes 0.1
  - id: publish
    dependencies: [draft]
    action: nap
    approval: Publish the release notes?
    inputs:
      - name: ms
        value: 2500
  - id: "<img src=x onerror=alert(1)>"
    dependencies: [publish]
    action: echo
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_in_the_browser_and_watch_the_run_complete() {
    let Some(browser) = webdriver::headless().await else {
        return;
    };

    // A run that waits for a human, driven by a coordinator in this process.
    let (_dir, stores) = temp_store().await;
    let def = load_yaml_str(WORKFLOW, "release_notes.yaml").unwrap();
    let mut executor = DagExecutor::new(None, registry(), stores.clone())
        .await
        .unwrap();
    executor
        .insert_workflow(def.clone(), "release_notes.yaml")
        .unwrap();
    let run_id = "e2e-run";
    let run = tokio::spawn(async move {
        let (_keep, cancel_rx) = tokio::sync::oneshot::channel();
        Coordinator::new(Vec::new(), 16, 16)
            .with_control_poll(Duration::from_millis(50))
            .run_parallel(
                &mut executor,
                &Cache::new(),
                "release_notes",
                run_id,
                cancel_rx,
            )
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rec = stores.runs.get_run(&RunId::from(run_id)).await.unwrap();
        if rec.is_some_and(|r| r.status == RunStatus::WaitingForHuman) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never waited for a human"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The server, on a loopback port.
    let listener = dagger_serve::bind("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = server(&stores, vec![def], None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));

    let s = &browser.session;
    let wait = Duration::from_secs(20);

    // The runs list shows the run; open it.
    s.goto(&format!("{base}/runs")).await.unwrap();
    let link = s
        .find(&format!("a[href=\"/runs/{run_id}\"]"), wait)
        .await
        .unwrap();
    assert_eq!(s.text(&link).await.unwrap(), run_id);
    s.click(&link).await.unwrap();

    // Its graph: three boxes, `publish` waiting for a human.
    s.find("#graph svg", wait).await.unwrap();
    assert_eq!(s.find_all("g.gnode").await.unwrap().len(), 3);
    assert_eq!(
        s.find_all("g.gnode.s-WaitingForHuman").await.unwrap().len(),
        1
    );
    let status = s.find("#run-status", wait).await.unwrap();
    assert_eq!(s.text(&status).await.unwrap(), "WaitingForHuman");
    // The hostile node id shows as text and ran no script.
    let cell = s.find("tr[data-i=\"2\"] td.mono", wait).await.unwrap();
    assert_eq!(s.text(&cell).await.unwrap(), "<img src=x onerror=alert(1)>");

    // Approve; the form posts and the page comes back, then follows the run live.
    s.execute("window.__beforeApproval = true; return null;")
        .await
        .unwrap();
    let approve = s.find("button.approve", wait).await.unwrap();
    s.click(&approve).await.unwrap();
    s.wait_until(
        "return window.__beforeApproval !== true && document.readyState === 'complete'
            && !!document.getElementById('run')",
        wait,
    )
    .await
    .unwrap();
    s.execute("window.__sameDocument = true; return null;")
        .await
        .unwrap();
    s.wait_until(
        "return document.getElementById('run-status').textContent === 'Completed'",
        wait,
    )
    .await
    .unwrap();
    let same = s
        .execute("return window.__sameDocument === true")
        .await
        .unwrap();
    assert_eq!(
        same,
        serde_json::Value::Bool(true),
        "the update came live, not from a page load"
    );
    s.wait_until(
        "return document.getElementById('run').dataset.liveState === 'ended'",
        wait,
    )
    .await
    .unwrap();
    assert_eq!(s.find_all("g.gnode.s-Completed").await.unwrap().len(), 3);
    let approvals_shown = s
        .execute("var w = document.querySelector('section.waiting'); return !!w && !w.hidden")
        .await
        .unwrap();
    assert_eq!(approvals_shown, false, "the approval form went away live");
    // An alert would have failed every WebDriver command since; no element was made either.
    assert_eq!(
        s.execute("return document.querySelectorAll('main img').length")
            .await
            .unwrap(),
        0
    );

    let png = s.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap();
    let shot = target.join("serve-e2e.png");
    std::fs::write(&shot, png).unwrap();
    println!("screenshot: {}", shot.display());
    browser.session.quit().await.unwrap();

    let report = run.await.unwrap().unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}

//! The HTML pages and their forms, through the router (`tower::oneshot`).

mod common;

use common::*;
use dagger_core::store::ControlRequest;
use dagger_core::{NodeStatus, RunStatus, Stores};
use dagger_dag_flow::WorkflowDef;
use serde_json::json;

struct Fixture {
    _dir: tempfile::TempDir,
    stores: Stores,
    server: dagger_serve::Server,
    app: axum::Router,
}

fn pipeline() -> WorkflowDef {
    workflow(
        "pipeline",
        &[("a", &[]), ("b", &["a"]), (EVIL, &["a"]), ("c", &["b"])],
    )
}

fn review() -> WorkflowDef {
    let mut wf = workflow("review", &[("draft", &[]), ("publish", &["draft"])]);
    wf.nodes[1].approval = Some("Publish <b>now</b>?".into());
    wf
}

async fn fixture() -> Fixture {
    let (dir, stores) = temp_store().await;
    let mut done = vec![
        Seed::new("a", NodeStatus::Completed),
        Seed::new("b", NodeStatus::Completed),
        Seed::new(EVIL, NodeStatus::Completed),
        Seed::new("c", NodeStatus::Completed),
    ];
    done[0].output = Some(json!({ "stdout": "hello </script><script>alert(3)</script>" }));
    seed_run(
        &stores,
        "r-done",
        &pipeline(),
        &["c"],
        RunStatus::Completed,
        &done,
    )
    .await;
    let mut failed = vec![
        Seed::new("a", NodeStatus::Completed),
        Seed::new("b", NodeStatus::Failed),
    ];
    failed[1].error = Some("<img src=x onerror=alert(2)>");
    failed[1].attempts = 3;
    seed_run(
        &stores,
        "r-fail",
        &pipeline(),
        &[],
        RunStatus::Failed,
        &failed,
    )
    .await;
    let mut waiting = vec![
        Seed::new("draft", NodeStatus::Completed),
        Seed::new("publish", NodeStatus::WaitingForHuman),
    ];
    waiting[1].prompt = Some("Publish <b>now</b>?");
    seed_run(
        &stores,
        "r-wait",
        &review(),
        &[],
        RunStatus::WaitingForHuman,
        &waiting,
    )
    .await;
    let server = server(&stores, vec![pipeline(), review()], None);
    let app = server.router();
    Fixture {
        _dir: dir,
        stores,
        server,
        app,
    }
}

fn csrf(f: &Fixture) -> String {
    format!("csrf={}", f.server.csrf_token())
}

#[tokio::test]
async fn root_redirects_to_the_runs() {
    let f = fixture().await;
    let a = get(&f.app, "/").await;
    assert_eq!(a.status, 303);
    assert_eq!(a.location(), "/runs");
}

#[tokio::test]
async fn runs_list_filters_and_pages() {
    let f = fixture().await;
    let a = get(&f.app, "/runs").await;
    assert_eq!(a.status, 200);
    for id in ["r-done", "r-fail", "r-wait"] {
        assert!(a.body.contains(&format!("href=\"/runs/{id}\"")), "{id}");
    }
    assert!(
        a.body.contains(f.server.csrf_token()),
        "the page embeds the CSRF token"
    );

    let a = get(&f.app, "/runs?status=Failed&workflow=").await;
    assert!(a.body.contains("/runs/r-fail") && !a.body.contains("/runs/r-done"));
    assert!(a.body.contains("<option value=\"Failed\" selected>"));

    let a = get(&f.app, "/runs?workflow=review").await;
    assert!(a.body.contains("/runs/r-wait") && !a.body.contains("/runs/r-fail"));

    let a = get(&f.app, "/runs?limit=2").await;
    assert_eq!(a.body.matches("<tr><td class=\"mono\">").count(), 2);
    assert!(
        a.body.contains("href=\"/runs?offset=2&amp;limit=2\""),
        "{}",
        a.body
    );
    let a = get(&f.app, "/runs?limit=2&offset=2").await;
    assert_eq!(a.body.matches("<tr><td class=\"mono\">").count(), 1);
    assert!(a.body.contains("rel=\"prev\""));
    assert!(!a.body.contains("rel=\"next\""));

    let a = get(&f.app, "/runs?status=Sleeping").await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("unknown status `Sleeping`"), "{}", a.body);
}

#[tokio::test]
async fn run_pages_link_a_re_run_and_its_parent() {
    let f = fixture().await;
    let mut child = f
        .stores
        .runs
        .get_run(&"r-fail".into())
        .await
        .unwrap()
        .unwrap();
    child.run_id = "r-child".into();
    child.lineage = Some(dagger_core::store::RunLineage {
        parent_run_id: "r-fail".into(),
        forked_from_node: Some("b".into()),
    });
    f.stores.runs.create_run(child).await.unwrap();

    let page = get(&f.app, "/runs/r-child").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(
            "<dd id=\"run-parent\"><a class=\"mono\" href=\"/runs/r-fail\">r-fail</a> from node <span class=\"mono\">b</span></dd>"
        ),
        "{}",
        page.body
    );
    let page = get(&f.app, "/runs/r-fail").await;
    assert!(
        page.body
            .contains("<a class=\"mono\" href=\"/runs/r-child\">r-child</a>"),
        "the parent links its re-run"
    );
    assert!(!page.body.contains("id=\"run-parent\""));
    let api = get(&f.app, "/api/runs/r-child").await;
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["parent_run_id"], "r-fail");
    assert_eq!(v["forked_from_node"], "b");
    let api = get(&f.app, "/api/runs/r-fail").await;
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["children"][0]["run_id"], "r-child");
}

#[tokio::test]
async fn run_page_shows_graph_nodes_outputs_and_added_nodes() {
    let f = fixture().await;
    let a = get(&f.app, "/runs/r-done").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("<svg"), "the graph is drawn");
    assert_eq!(a.body.matches("class=\"gnode s-Completed").count(), 4);
    assert_eq!(
        a.body.matches("class=\"gnode s-Completed added\"").count(),
        1
    );
    assert!(a.body.contains("(added at run time)"));
    assert!(a.body.contains("<tr data-i=\"3\">"));
    assert!(
        a.body.contains("&quot;stdout&quot;:&quot;hello"),
        "output preview"
    );
    assert!(
        !a.body.contains("data-live"),
        "a finished run is not followed live"
    );
    // A finished run offers neither cancel nor resume.
    assert!(a.body.contains("action=\"/runs/r-done/cancel\" data-when=\"Running Paused WaitingForHuman\" data-confirm=\"Cancel this run?\" hidden"));

    let a = get(&f.app, "/runs/r-fail").await;
    assert!(a.body.contains("class=\"gnode s-Failed\""));
    assert!(a.body.contains("<td class=\"at\">3</td>"));
    assert!(
        a.body.contains(
            "action=\"/runs/r-fail/resume\" data-when=\"Failed Cancelled Paused WaitingForHuman Orphaned\">"
        ),
        "resume offered"
    );

    let a = get(&f.app, "/runs/nope").await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("run `nope` not found"));
}

#[tokio::test]
async fn user_strings_are_escaped_everywhere() {
    let f = fixture().await;
    for uri in [
        "/runs/r-done",
        "/runs/r-fail",
        "/runs/r-wait",
        "/workflows",
        "/workflows/pipeline",
        "/runs",
    ] {
        let a = get(&f.app, uri).await;
        assert_eq!(a.status, 200, "{uri}");
        assert!(!a.body.contains("<script>alert"), "{uri}: {}", a.body);
        assert!(!a.body.contains("<img src=x"), "{uri}");
        assert!(!a.body.contains("<b>now</b>"), "{uri}");
        assert_eq!(
            a.body.matches("<script").count(),
            1,
            "{uri}: only our own script tag"
        );
    }
    let a = get(&f.app, "/runs/r-done").await;
    assert!(
        a.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the node id shows as text"
    );
    let a = get(&f.app, "/runs/r-fail").await;
    assert!(a.body.contains("&lt;img src=x onerror=alert(2)&gt;"));
    let a = get(&f.app, "/runs/r-wait").await;
    assert!(a.body.contains("Publish &lt;b&gt;now&lt;/b&gt;?"));
    let a = get(&f.app, "/workflows").await;
    assert!(
        a.body
            .contains("unknown field `&lt;script&gt;alert(1)&lt;/script&gt;`")
    );
    // A workflow whose name needs escaping in a URL and in HTML.
    let (_d, stores) = temp_store().await;
    let evil_wf = workflow(EVIL, &[(EVIL, &[])]);
    let app = server(&stores, vec![evil_wf], None).router();
    let a = get(&app, "/workflows").await;
    assert!(
        a.body
            .contains("href=\"/workflows/%3Cscript%3Ealert%281%29%3C%2Fscript%3E\"")
    );
    let a = get(&app, &format!("/workflows/{}", enc(EVIL))).await;
    assert_eq!(a.status, 200);
    assert!(!a.body.contains("<script>alert"));
}

#[tokio::test]
async fn waiting_node_can_be_approved_with_the_csrf_token() {
    let f = fixture().await;
    let a = get(&f.app, "/runs/r-wait").await;
    assert!(a.body.contains("data-live=\"/api/runs/r-wait/events\""));
    assert!(a.body.contains("Waiting for a human"));
    assert!(
        a.body
            .contains("<input type=\"hidden\" name=\"node\" value=\"publish\">")
    );

    let a = post_form(
        &f.app,
        "/runs/r-wait/approve",
        &format!("{}&node=publish&input=%7B%22ok%22%3Atrue%7D", csrf(&f)),
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.location(), "/runs/r-wait");
    assert_eq!(
        controls(&f.stores, "r-wait").await,
        vec![ControlRequest::Approve {
            node_id: "publish".into(),
            input: Some(json!({ "ok": true }))
        }]
    );

    let a = post_form(
        &f.app,
        "/runs/r-wait/reject",
        &format!("{}&node=publish&reason=no", csrf(&f)),
    )
    .await;
    // The first decision recorded wins: the later rejection is refused.
    assert_eq!(a.status, 409);
    assert!(
        a.body
            .contains("node `publish` of run `r-wait` was already approved at 20"),
        "{}",
        a.body
    );
    assert_eq!(controls(&f.stores, "r-wait").await.len(), 1);

    let a = post_form(
        &f.app,
        "/runs/r-wait/approve",
        &format!("{}&node=publish&input=%7Bnope", csrf(&f)),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("the input is not valid JSON"), "{}", a.body);

    let a = post_form(
        &f.app,
        "/runs/r-wait/approve",
        &format!("{}&node=draft", csrf(&f)),
    )
    .await;
    assert_eq!(a.status, 409);
    assert!(
        a.body
            .contains("node `draft` of run `r-wait` is not waiting for a human (it is Completed)"),
        "{}",
        a.body
    );

    let a = post_form(
        &f.app,
        "/runs/r-wait/approve",
        &format!("{}&node=ghost", csrf(&f)),
    )
    .await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("run `r-wait` has no node `ghost`"));

    let a = post_form(&f.app, "/runs/r-wait/approve", &csrf(&f)).await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("the form names no node"));
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_forbidden() {
    let f = fixture().await;
    for (uri, body) in [
        ("/runs/r-wait/approve", "node=publish".to_string()),
        (
            "/runs/r-wait/approve",
            "node=publish&csrf=wrong".to_string(),
        ),
        ("/runs/r-wait/reject", "node=publish&csrf=".to_string()),
        ("/runs/r-wait/cancel", "csrf=0".to_string()),
        ("/runs/r-fail/resume", String::new()),
    ] {
        let a = post_form(&f.app, uri, &body).await;
        assert_eq!(a.status, 403, "{uri} {body}");
        assert!(a.body.contains("missing or wrong CSRF token"), "{}", a.body);
    }
    assert!(
        controls(&f.stores, "r-wait").await.is_empty(),
        "nothing was queued"
    );
    // A GET cannot change anything.
    let a = get(&f.app, "/runs/r-wait/cancel").await;
    assert_eq!(a.status, 405);
}

#[tokio::test]
async fn cancel_is_queued_for_a_live_run_and_refused_for_a_finished_one() {
    let f = fixture().await;
    let a = post_form(
        &f.app,
        "/runs/r-wait/cancel",
        &format!("{}&reason=enough", csrf(&f)),
    )
    .await;
    assert_eq!(a.status, 303);
    assert_eq!(
        controls(&f.stores, "r-wait").await,
        vec![ControlRequest::Cancel {
            reason: "enough".into()
        }]
    );
    let a = post_form(&f.app, "/runs/r-done/cancel", &csrf(&f)).await;
    assert_eq!(a.status, 409);
    assert!(
        a.body.contains("run `r-done` already ended (Completed)"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn resume_runs_in_the_server_and_completes() {
    let f = fixture().await;
    // r-fail: `b` failed; resuming runs b and c (echo) and completes; the
    // evil node never ran and runs too.
    let a = post_form(&f.app, "/runs/r-fail/resume", &csrf(&f)).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = post_form(&f.app, "/runs/r-fail/resume", &csrf(&f)).await;
    assert!(
        a.status == 409 || a.status == 303,
        "a second resume is refused while the first runs, or allowed after it ended: {}",
        a.status
    );
    // Follow the run's events until it ends.
    let a = get(&f.app, "/api/runs/r-fail/events").await;
    assert!(a.body.contains("event: end"), "{}", a.body);
    let run = f
        .stores
        .runs
        .get_run(&"r-fail".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.reason);
    let a = post_form(&f.app, "/runs/r-done/resume", &csrf(&f)).await;
    assert_eq!(a.status, 409);
    assert!(
        a.body
            .contains("run `r-done` completed; there is nothing to resume")
    );
}

#[tokio::test]
async fn workflows_show_tags_graph_and_problems() {
    let f = fixture().await;
    let a = get(&f.app, "/workflows").await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("href=\"/workflows/pipeline\""));
    assert!(a.body.contains("<span class=\"badge tag\">test</span>"));
    assert!(a.body.contains("Files that did not load"));
    let a = get(&f.app, "/workflows/review").await;
    assert!(a.body.contains("<svg"));
    assert!(a.body.contains("class=\"gnode s-def\""));
    assert!(a.body.contains("approval"));
    let a = get(&f.app, "/workflows/none").await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("workflow `none` not found"));
}

#[tokio::test]
async fn assets_headers_and_unknown_paths() {
    let f = fixture().await;
    let a = get(&f.app, "/assets/app.js").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "text/javascript; charset=utf-8");
    assert!(a.body.contains("EventSource"));
    let a = get(&f.app, "/assets/style.css").await;
    assert_eq!(a.headers["content-type"], "text/css; charset=utf-8");
    let a = get(&f.app, "/runs").await;
    let csp = a.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(a.headers["x-frame-options"], "DENY");
    let a = get(&f.app, "/nowhere").await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("no such page or API route: `/nowhere`"));
}

#[tokio::test]
async fn requests_for_a_foreign_host_are_refused_without_a_token() {
    let f = fixture().await;
    let req = |host: &str| {
        axum::http::Request::get("/runs")
            .header("host", host)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    assert_eq!(send(&f.app, req("127.0.0.1:8080")).await.status, 200);
    assert_eq!(send(&f.app, req("localhost:8080")).await.status, 200);
    let a = send(&f.app, req("evil.example:8080")).await;
    assert_eq!(a.status, 421);
    assert!(a.body.contains("not `evil.example:8080`"));
}

#[tokio::test]
async fn a_server_token_guards_changes_and_login_sets_a_cookie() {
    let (_d, stores) = temp_store().await;
    let mut waiting = vec![
        Seed::new("draft", NodeStatus::Completed),
        Seed::new("publish", NodeStatus::WaitingForHuman),
    ];
    waiting[1].prompt = Some("ok?");
    seed_run(
        &stores,
        "w",
        &review(),
        &[],
        RunStatus::WaitingForHuman,
        &waiting,
    )
    .await;
    let token = "0123456789abcdef-secret";
    let server = server(&stores, vec![], Some(token));
    let app = server.router();
    let csrf = format!("csrf={}", server.csrf_token());

    let a = post_form(&app, "/runs/w/cancel", &csrf).await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("requires its token"), "{}", a.body);

    let a = post_form(&app, "/login", &format!("{csrf}&token=wrong")).await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("Wrong token."));
    let a = post_form(&app, "/login", &format!("token={token}")).await;
    assert_eq!(a.status, 403, "login needs the CSRF token too");
    let a = post_form(&app, "/login", &format!("{csrf}&token={token}")).await;
    assert_eq!(a.status, 303);
    let cookie = a.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with(&format!("dagger_token={token};"))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let with_cookie = |body: &str| {
        axum::http::Request::post("/runs/w/cancel")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("dagger_token={token}"))
            .body(axum::body::Body::from(body.to_string()))
            .unwrap()
    };
    let a = send(&app, with_cookie("")).await;
    assert_eq!(a.status, 403, "the cookie does not replace the CSRF token");
    assert!(a.body.contains("CSRF"));
    let a = send(&app, with_cookie(&csrf)).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(controls(&stores, "w").await.len(), 1);
    // Pages stay readable without the token.
    assert_eq!(get(&app, "/runs/w").await.status, 200);
    assert!(get(&app, "/login").await.body.contains("type=\"password\""));
}

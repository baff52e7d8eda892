//! A minimal W3C WebDriver client for the browser test: the handful of
//! commands it needs, as JSON over HTTP/1.1 to a local chromedriver.
//!
//! Why not a client crate: `fantoccini` (no TLS) adds ~80 crates (two ICU
//! stacks, `time`, `url`, `webdriver`) and measured 169 s against 41 s for
//! axum alone in a clean build on this 2-core machine; the protocol subset
//! used here is a few dozen lines.
#![allow(dead_code, unreachable_pub)]

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The W3C key under which an element reference comes back.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session.
pub struct Session {
    port: u16,
    id: String,
}

/// One command, bounded so a stuck browser fails the test instead of hanging it.
async fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    tokio::time::timeout(Duration::from_secs(60), exchange(port, method, path, body))
        .await
        .map_err(|_| format!("{method} {path}: no answer within 60 s"))?
}

async fn exchange(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect to chromedriver: {e}"))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever we ask: read the
    // header, then exactly Content-Length bytes (or chunks up to the last).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (split, head) = loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                split,
                String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase(),
            );
        }
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the HTTP header ended".into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &raw[split + 4..];
        let complete = match length {
            Some(len) => body.len() >= len,
            None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let mut payload = raw[split + 4..].to_vec();
    if let Some(len) = length {
        payload.truncate(len);
    } else if chunked {
        payload = dechunk(&payload)?;
    }
    let v: Value = serde_json::from_slice(&payload).map_err(|e| {
        format!(
            "{method} {path}: bad JSON ({e}): {}",
            String::from_utf8_lossy(&payload)
        )
    })?;
    if let Some(err) = v["value"].get("error") {
        return Err(format!("{method} {path}: {err}: {}", v["value"]["message"]));
    }
    Ok(v["value"].clone())
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.trim(), 16).map_err(|e| e.to_string())?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// `$env`, else the first of `names` on the `PATH`.
fn find_binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills a child process when the test ends, whatever happens.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium session and the chromedriver driving it; the driver
/// is killed and the browser profile removed when this is dropped.
pub struct Browser {
    /// The WebDriver session.
    pub session: Session,
    _driver: Killed,
    _profile: tempfile::TempDir,
}

/// Starts chromedriver and a headless Chromium with a fresh profile, or
/// prints why the browser test is skipped (`chromium` or `chromedriver` not
/// installed; `CHROMIUM` and `CHROMEDRIVER` override their paths) and
/// returns `None`.
pub async fn headless() -> Option<Browser> {
    let hint = "(apt-get install -y chromium chromium-driver)";
    let Some(chromium) = find_binary("CHROMIUM", &["chromium", "chromium-browser"]) else {
        println!("skipping the browser test: `chromium` not found {hint}");
        return None;
    };
    let Some(chromedriver) = find_binary("CHROMEDRIVER", &["chromedriver"]) else {
        println!("skipping the browser test: `chromedriver` not found {hint}");
        return None;
    };
    let port = free_port();
    let driver = Killed(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    wait_ready(port, Duration::from_secs(20)).await.unwrap();
    let profile = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.path().display())])
    .collect();
    let session = Session::start(port, chromium.to_str().unwrap(), &args)
        .await
        .unwrap();
    Some(Browser {
        session,
        _driver: driver,
        _profile: profile,
    })
}

/// Waits until chromedriver on `port` reports ready.
pub async fn wait_ready(port: u16, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        match http(port, "GET", "/status", None).await {
            Ok(v) if v["ready"] == true => return Ok(()),
            other if Instant::now() > deadline => {
                return Err(format!("chromedriver not ready: {other:?}"));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

impl Session {
    /// Starts a headless Chromium session with `args`.
    pub async fn start(port: u16, binary: &str, args: &[String]) -> Result<Self, String> {
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": binary, "args": args }
        }}});
        let v = http(port, "POST", "/session", Some(&caps)).await?;
        let id = v["sessionId"].as_str().ok_or("no session id")?.to_string();
        Ok(Self { port, id })
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.id);
        http(self.port, method, &path, body.as_ref()).await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The elements matching a CSS selector.
    pub async fn find_all(&self, css: &str) -> Result<Vec<String>, String> {
        let v = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The first element matching `css`, waiting up to `within` for it.
    pub async fn find(&self, css: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.find_all(css).await?.into_iter().next() {
                return Ok(e);
            }
            if Instant::now() > deadline {
                let page = self
                    .execute("return location.href + '\\n' + document.documentElement.outerHTML.slice(0, 3000)")
                    .await?;
                return Err(format!(
                    "no element matches `{css}` in {}",
                    page.as_str().unwrap_or("?")
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks an element.
    pub async fn click(&self, element: &str) -> Result<(), String> {
        self.cmd(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// The rendered text of an element.
    pub async fn text(&self, element: &str) -> Result<String, String> {
        let v = self
            .cmd("GET", &format!("/element/{element}/text"), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Runs `script` in the page and returns its value.
    pub async fn execute(&self, script: &str) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Waits until `script` returns `true`, up to `within`.
    pub async fn wait_until(&self, script: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if self.execute(script).await? == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("timed out waiting for `{script}`"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG screenshot of the window.
    pub async fn screenshot(&self) -> Result<Vec<u8>, String> {
        let v = self.cmd("GET", "/screenshot", None).await?;
        base64_decode(v.as_str().ok_or("no screenshot data")?)
    }

    /// Ends the session (closes the browser).
    pub async fn quit(self) -> Result<(), String> {
        http(self.port, "DELETE", &format!("/session/{}", self.id), None)
            .await
            .map(drop)
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let value = |c: u8| -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("bad base64 byte {c}")),
        } as u32)
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

#[test]
fn base64_round_trip() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
}

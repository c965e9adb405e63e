//! The web page in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven
//! over WebDriver by fantoccini): two pages of one user stay in sync, temporary blocks stay
//! local, and the status pill shows an outage and the recovery; two users share a library
//! (switcher, share dialog, presence, "on 2 of 2", revocation); librarian.js paces mutations
//! under the server's in-flight limit across cut connections and resumes. Saves
//! screenshots under `target/browser/`.
//!
//! Skipped (with a note) when chromedriver is missing, unless `LIBRARIAN_TEST_REQUIRE_BROWSER=1`
//! (set by `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use fantoccini::{Client, ClientBuilder, Locator};
use librarian_testkit::proxy::TcpProxy;
use librarian_testkit::server::TestServer;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Hang guard for waiting on the page; never a performance assertion.
const PATIENCE: Duration = Duration::from_secs(30);

struct Driver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Option<Driver> {
        let path = std::env::var("LIBRARIAN_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        if !std::path::Path::new(&path).exists() {
            if std::env::var("LIBRARIAN_TEST_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
                panic!("LIBRARIAN_TEST_REQUIRE_BROWSER=1 but there is no chromedriver at {path}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "note: browser test skipped (no chromedriver at {path}; install chromium and chromium-driver)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Driver {
            child,
            url,
            profiles: tempfile::tempdir().unwrap(),
        })
    }

    async fn page(&self, name: &str) -> Client {
        let profile = self.profiles.path().join(name);
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": std::env::var("LIBRARIAN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-quic", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1400,860",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("start a Chromium session")
    }
}

/// Polls until `check` passes, or fails the test after PATIENCE.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(page: &Client, css: &str) -> usize {
    page.find_all(Locator::Css(css))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

async fn shows(page: &Client, css: &str) {
    eventually(css, || async { count(page, css).await > 0 }).await;
}

async fn lacks(page: &Client, css: &str) {
    eventually(&format!("no {css}"), || async {
        count(page, css).await == 0
    })
    .await;
}

async fn pill(page: &Client) -> String {
    match page.find(Locator::Css("#status")).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn pill_says(page: &Client, prefix: &str) {
    eventually(&format!("status pill saying {prefix:?}"), || async {
        pill(page).await.starts_with(prefix)
    })
    .await;
}

async fn fill(page: &Client, css: &str, text: &str) {
    let input = page.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn click(page: &Client, css: &str) {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn sign_in(page: &Client, base: &str, user: &str) {
    page.goto(base).await.unwrap();
    fill(page, "#signin-user", user).await;
    click(page, "#signin-form button[type=submit]").await;
    pill_says(page, "Live").await;
}

async fn screenshot(page: &Client, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    page.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    std::fs::write(&path, page.screenshot().await.unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_of_one_user_stay_in_sync_in_a_real_browser() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let mut server = TestServer::start(&[]);
    let page1 = driver.page("one").await;
    let page2 = driver.page("two").await;
    sign_in(&page1, &server.base_url, "alice").await;
    sign_in(&page2, &server.base_url, "alice").await;

    // Create in page 1 → appears in page 2 without a reload.
    fill(&page1, "#project-form [name=name]", "Writing").await;
    click(&page1, "#project-form button[type=submit]").await;
    shows(&page2, "#project-tree li[data-name='Writing']").await;
    fill(&page1, "#project-form [name=name]", "Drafts").await;
    page1
        .find(Locator::Css("#project-form [name=parent_id]"))
        .await
        .unwrap()
        .select_by_label("Writing")
        .await
        .unwrap();
    click(&page1, "#project-form button[type=submit]").await;
    // Shown as a child of its parent in the other page's tree.
    shows(
        &page2,
        "#project-tree li[data-name='Writing'] li[data-name='Drafts']",
    )
    .await;
    fill(&page1, "#block-form [name=title]", "Alpha").await;
    fill(
        &page1,
        "#block-form [name=content]",
        "You are a careful editor.",
    )
    .await;
    fill(&page1, "#block-form [name=tags]", "style, en").await;
    click(&page1, "#block-form button[type=submit]").await;
    shows(&page2, "#block-list li[data-title='Alpha']").await;

    // Edit in page 1 → page 2 follows.
    click(&page1, "#block-list li[data-title='Alpha'] button.edit").await;
    fill(&page1, "#block-form [name=title]", "Alpha 2").await;
    click(&page1, "#block-form button[type=submit]").await;
    shows(&page2, "#block-list li[data-title='Alpha 2']").await;
    lacks(&page2, "#block-list li[data-title='Alpha']").await;

    // A temporary block in page 1: shown there, marked, never in page 2.
    fill(&page1, "#block-form [name=title]", "Draft").await;
    click(&page1, "#block-form [name=temporary]").await;
    click(&page1, "#block-form button[type=submit]").await;
    shows(
        &page1,
        "#block-list li.temporary[data-title='Draft'] .badge",
    )
    .await;

    // Page 2 edits; page 1 gets them and keeps its draft.
    fill(&page2, "#block-form [name=title]", "Beta").await;
    click(&page2, "#block-form button[type=submit]").await;
    shows(&page1, "#block-list li[data-title='Beta']").await;
    fill(&page2, "#prompt-form [name=title]", "Review a draft").await;
    click(&page2, "#prompt-blocks input").await;
    click(&page2, "#prompt-form button[type=submit]").await;
    shows(&page1, "#prompt-list li[data-title='Review a draft']").await;
    assert_eq!(
        count(&page1, "#block-list li.temporary[data-title='Draft']").await,
        1
    );
    assert_eq!(count(&page2, "#block-list li[data-title='Draft']").await, 0);

    // A refused form shows the problem next to it.
    fill(&page2, "#project-form [name=name]", "   ").await;
    click(&page2, "#project-form button[type=submit]").await;
    eventually("the error next to the project form", || async {
        let e = page2
            .find(Locator::Css("[data-error-for='project-form']"))
            .await
            .unwrap();
        e.text().await.unwrap_or_default().contains("name")
    })
    .await;

    // Delete in page 2 → gone in page 1.
    fill(&page2, "#block-form [name=title]", "Gamma").await;
    click(&page2, "#block-form button[type=submit]").await;
    shows(&page1, "#block-list li[data-title='Gamma']").await;
    click(&page2, "#block-list li[data-title='Gamma'] button.delete").await;
    lacks(&page1, "#block-list li[data-title='Gamma']").await;

    pill_says(&page1, "Live").await;
    let shot = screenshot(&page1, "librarian.png").await;

    // The server goes away: the pill shows the error; it comes back: Live again, draft kept.
    server.kill();
    pill_says(&page1, "Error").await;
    screenshot(&page1, "librarian-error.png").await;
    server.restart();
    pill_says(&page1, "Live").await;
    pill_says(&page2, "Live").await;
    assert_eq!(
        count(&page1, "#block-list li.temporary[data-title='Draft']").await,
        1
    );
    fill(&page2, "#block-form [name=title]", "After").await;
    click(&page2, "#block-form button[type=submit]").await;
    shows(&page1, "#block-list li[data-title='After']").await;

    // Saving the temporary block makes it a real one, in both pages.
    click(
        &page1,
        "#block-list li.temporary[data-title='Draft'] button.save",
    )
    .await;
    shows(&page2, "#block-list li[data-title='Draft']").await;
    lacks(&page1, "#block-list li.temporary").await;
    assert_eq!(count(&page1, "#block-list li[data-title='Draft']").await, 1);

    println!("screenshot: {}", shot.display());
    page1.close().await.unwrap();
    page2.close().await.unwrap();
}

/// Selects the option of `select_css` whose text starts with `label`, once there is one.
async fn choose(page: &Client, select_css: &str, label: &str) {
    let script = format!(
        r#"const s = document.querySelector({select:?});
           const o = s && [...s.options].find((o) => o.textContent.startsWith({label:?}));
           if (!o) return false;
           s.value = o.value;
           s.dispatchEvent(new Event("change"));
           return true;"#,
        select = select_css,
        label = label,
    );
    eventually(&format!("an option {label:?} in {select_css}"), || async {
        page.execute(&script, vec![])
            .await
            .unwrap()
            .as_bool()
            .unwrap_or(false)
    })
    .await;
}

async fn text_of(page: &Client, css: &str) -> String {
    match page.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Two users on one shared library in the page: alice creates and shares it, bob's switcher
/// shows it without a reload, both see who is here, bob's write reaches alice, alice's save is
/// "on 2 of 2", and when alice removes bob his page says his access was revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_share_a_library_in_the_page() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let server = TestServer::start(&[]);
    let alice = driver.page("alice").await;
    let bob = driver.page("bob").await;
    sign_in(&alice, &server.base_url, "alice").await;
    sign_in(&bob, &server.base_url, "bob").await;

    // Alice makes a library; the page opens it, with her as its owner.
    click(&alice, "#new-library").await;
    fill(&alice, "#library-name", "Team prompts").await;
    click(&alice, "#library-form button[type=submit]").await;
    shows(&alice, "#role[data-role='owner']").await;
    eventually("the switcher on the new library", || async {
        alice
            .execute(
                "return document.querySelector('#library-select').selectedOptions[0]?.textContent",
                vec![],
            )
            .await
            .unwrap()
            .as_str()
            .is_some_and(|t| t == "Team prompts")
    })
    .await;
    pill_says(&alice, "Live").await;

    // She shares it with bob as an editor.
    click(&alice, "#share").await;
    fill(&alice, "#share-user", "bob").await;
    click(&alice, "#share-form button[type=submit]").await;
    shows(&alice, "#members li[data-user='bob'][data-role='editor']").await;
    click(&alice, "#share-close").await;

    // Bob's switcher lists it on its own (polled); he opens it as an editor.
    choose(&bob, "#library-select", "Team prompts").await;
    shows(&bob, "#role[data-role='editor']").await;
    pill_says(&bob, "Live").await;

    // Who is here: both, in both pages.
    for page in [&alice, &bob] {
        shows(page, "#presence li[data-user='alice']").await;
        shows(page, "#presence li[data-user='bob']").await;
    }

    // Bob's write reaches alice; alice's save is held by both sessions.
    fill(&bob, "#block-form [name=title]", "From Bob").await;
    click(&bob, "#block-form button[type=submit]").await;
    shows(&alice, "#block-list li[data-title='From Bob']").await;
    fill(&alice, "#block-form [name=title]", "From Alice").await;
    click(&alice, "#block-form button[type=submit]").await;
    shows(&bob, "#block-list li[data-title='From Alice']").await;
    shows(&alice, "#receipt[data-held='2'][data-total='2']").await;
    assert!(text_of(&alice, "#receipt").await.contains("on 2 of 2"));
    let shot = screenshot(&alice, "librarian-shared.png").await;

    // Alice removes bob: his page says so and shows nothing of the library any more.
    click(&alice, "#share").await;
    click(&alice, "#members li[data-user='bob'] button.remove").await;
    lacks(&alice, "#members li[data-user='bob']").await;
    shows(&bob, "#revoked:not([hidden])").await;
    pill_says(&bob, "Access revoked").await;
    assert_eq!(count(&bob, "#app:not([hidden])").await, 0);
    lacks(&alice, "#presence li[data-user='bob']").await;
    screenshot(&bob, "librarian-revoked.png").await;

    // Back to his own library, which works as before.
    click(&bob, "#back-to-own").await;
    pill_says(&bob, "Live").await;
    fill(&bob, "#block-form [name=title]", "Bob's own").await;
    click(&bob, "#block-form button[type=submit]").await;
    shows(&bob, "#block-list li[data-title=\"Bob's own\"]").await;

    println!("screenshot: {}", shot.display());
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// Runs `script` in the page and returns its value as an integer.
async fn js_i64(page: &Client, script: &str) -> i64 {
    page.execute(script, vec![])
        .await
        .unwrap()
        .as_i64()
        .unwrap_or(-1)
}

/// Cuts the page's connection and waits until librarian.js has noticed: one more
/// `error` status than before the cut (counted by the page's `window.reconnects`). The
/// proxy refuses new connections meanwhile, so nothing gets back to live before a restore.
async fn cut_and_see_it_noticed(page: &Client, proxy: &TcpProxy) {
    let before = js_i64(page, "return window.reconnects").await;
    assert!(before >= 0, "the page does not count its reconnects");
    proxy.cut();
    eventually("the page noticed the cut connection", || async {
        js_i64(page, "return window.reconnects").await > before
    })
    .await;
}

/// librarian.js (the bundled @librarian/client) alone, no app: 40 creates at once against a
/// limit of 2 in flight, with the connection cut twice on the way; every one resolves and
/// applies once, and after one more cut the client resumes live with all of them. (Its G9
/// checks, an older snapshot injected into the stream, are in the client's Vitest suite.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librarian_js_paces_mutations_across_cut_connections_and_resumes() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let server = TestServer::start(&[("LIBRARIAN__WS__MAX_INFLIGHT_MUTATIONS", "2")]);
    let upstream = server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = TcpProxy::start(upstream).await;
    let page = driver.page("pacing").await;
    page.goto(&format!("http://{}/", proxy.addr)).await.unwrap();
    const N: i64 = 40;
    page.execute(
        r#"
        const n = arguments[0];
        window.results = [];
        window.reconnects = 0;
        (async () => {
          const { LibraryClient } = await import("/librarian.js");
          const res = await fetch("/api/v1/dev/token", { method: "POST",
            headers: { "content-type": "application/json" }, body: JSON.stringify({ user: "pacer" }) });
          const { token } = await res.json();
          const lib = new LibraryClient({ url: location.origin, getToken: () => token });
          window.lib = lib;
          // Each lost connection shows as an `error` status (with its retry).
          let last = null;
          lib.subscribe(() => {
            const state = lib.getState().status.state;
            if (state === "error" && last !== "error") window.reconnects += 1;
            last = state;
          });
          await Promise.all(Array.from({ length: n }, (_, i) =>
            lib.createContextBlock({ title: `p${String(i).padStart(3, "0")}` }).then(
              () => window.results.push("ok"),
              (e) => window.results.push(JSON.stringify(e.problem ?? String(e))))));
        })().catch((e) => window.results.push(String(e)));
        "#,
        vec![serde_json::json!(N)],
    )
    .await
    .unwrap();
    for cut_after in [3, N / 2] {
        eventually(&format!("{cut_after} mutations resolved"), || async {
            js_i64(&page, "return window.results.length").await >= cut_after
        })
        .await;
        cut_and_see_it_noticed(&page, &proxy).await;
        proxy.restore().await;
    }
    eventually("every mutation resolved", || async {
        js_i64(&page, "return window.results.length").await == N
    })
    .await;
    let results = page.execute("return window.results", vec![]).await.unwrap();
    let failed: Vec<&serde_json::Value> = results
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| *r != "ok")
        .collect();
    assert!(
        failed.is_empty(),
        "{} reported as failed, the first: {:?}",
        failed.len(),
        failed.first()
    );
    let library: serde_json::Value = reqwest::Client::new()
        .get(server.url("/api/v1/library"))
        .bearer_auth(server.token("pacer"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut titles: Vec<&str> = library["context_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["title"].as_str().unwrap())
        .collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len() as i64, N, "each mutation applied exactly once");
    assert_eq!(
        library["context_blocks"].as_array().unwrap().len() as i64,
        N
    );

    // After one more cut the client resumes and is live again, holding every write.
    cut_and_see_it_noticed(&page, &proxy).await;
    proxy.restore().await;
    eventually("a resumed live session", || async {
        js_i64(
            &page,
            r#"const s = window.lib.getState();
               return s.status.state === "live" ? s.contextBlocks.length : -1"#,
        )
        .await
            == N
    })
    .await;
    page.close().await.unwrap();
}

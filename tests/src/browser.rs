//! A real Chromium for the console's tests: Debian's `chromium` driven by its `chromedriver`
//! over WebDriver (fantoccini), headless, without the sandbox (the tests run as root). The
//! browser's console log is read back (chromedriver's `se/log`), so a test can check that a
//! page logged no error.
//!
//! The calls are blocking, on a runtime of the browser's own, like the rest of the harness.
//! Every wait polls the page against [`BROWSER_DEADLINE`] and panics with what the page shows.

use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::servers::{free_port, http_get, wait_ready, Process};
use crate::tool;

/// How long a page may take to show what a test waits for.
pub const BROWSER_DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// A headless Chromium session; the browser and its driver end on drop.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    _driver: Process,
}

impl Browser {
    pub fn start() -> Browser {
        let chromium = tool("chromium");
        let port = free_port();
        let mut command = Command::new(tool("chromedriver"));
        command.arg(format!("--port={port}"));
        let mut driver = Process::spawn(command);
        wait_ready("chromedriver", &mut driver, || {
            match http_get(port, "/status") {
                Ok((200, body)) if body.contains("\"ready\":true") => Ok(()),
                Ok((status, body)) => Err(format!("{status} {body}")),
                Err(e) => Err(e),
            }
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run", "--window-size=1280,900"],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = runtime
            .block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .unwrap_or_else(|e| panic!("no Chromium session: {e}\n{}", driver.log()));
        Browser {
            runtime,
            client: Some(client),
            _driver: driver,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a session until drop")
    }

    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    pub fn url(&self) -> String {
        let url = self.runtime.block_on(self.client().current_url());
        url.expect("the current URL").to_string()
    }

    /// The text of the first element `css` finds, once it holds `text`.
    #[track_caller]
    pub fn wait_for_text(&self, css: &str, text: &str) -> String {
        let deadline = Instant::now() + BROWSER_DEADLINE;
        loop {
            let shown = self.runtime.block_on(async {
                let element = self.client().find(Locator::Css(css)).await.ok()?;
                element.text().await.ok()
            });
            match shown {
                Some(shown) if shown.contains(text) => return shown,
                _ if Instant::now() >= deadline => panic!(
                    "`{css}` never showed {text:?} (it shows {shown:?})\n--- page ---\n{}\n--- console ---\n{:#?}",
                    self.page_text(),
                    self.console_log()
                ),
                _ => std::thread::sleep(POLL),
            }
        }
    }

    /// Everything the page shows, for failure messages.
    pub fn page_text(&self) -> String {
        self.runtime
            .block_on(async {
                let body = self.client().find(Locator::Css("body")).await?;
                body.text().await
            })
            .unwrap_or_else(|e| format!("(no page text: {e})"))
    }

    /// Clicks the first element `css` finds, once there is one.
    #[track_caller]
    pub fn click(&self, css: &str) {
        let element = self.wait_for(css);
        self.runtime
            .block_on(element.click())
            .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// Types `text` into the field `css` finds.
    #[track_caller]
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css);
        self.runtime
            .block_on(element.send_keys(text))
            .unwrap_or_else(|e| panic!("cannot type into `{css}`: {e}"));
    }

    #[track_caller]
    fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let waited = self.runtime.block_on(
            self.client()
                .wait()
                .at_most(BROWSER_DEADLINE)
                .every(POLL)
                .for_element(Locator::Css(css)),
        );
        waited.unwrap_or_else(|e| {
            panic!(
                "no `{css}` on the page: {e}\n--- page ---\n{}",
                self.page_text()
            )
        })
    }

    /// Runs `script` (a function body) in the page; what it returns.
    pub fn script(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.client().execute(script, Vec::new()))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Accepts the page's `confirm()` dialog, once it is open.
    pub fn accept_dialog(&self) {
        let deadline = Instant::now() + BROWSER_DEADLINE;
        while let Err(e) = self.runtime.block_on(self.client().accept_alert()) {
            assert!(Instant::now() < deadline, "no dialog opened: {e}");
            std::thread::sleep(POLL);
        }
    }

    /// What the pages logged to the browser's console since the last call (each entry has
    /// `level`, `message`, `source`).
    pub fn console_log(&self) -> Vec<Value> {
        let log = self.runtime.block_on(self.client().issue_cmd(BrowserLog));
        match log {
            Ok(Value::Array(entries)) => entries,
            other => panic!("chromedriver gave no browser log: {other:?}"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
    }
}

/// chromedriver's log endpoint, for the `browser` log: what `console.*` and the network
/// layer reported, which WebDriver itself has no command for.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "type": "browser" }).to_string();
        (http::Method::POST, Some(body))
    }
}

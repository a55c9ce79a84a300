//! The browser console at `/console/` on the operator listener: its sessions and CSRF guard
//! over plain HTTP, and the views in a real headless Chromium (sign in, the overview, an
//! event, replaying a dead letter until it is delivered, delivering again, searching),
//! with nothing loaded from elsewhere and no error in the browser's console.

use std::time::{Duration, Instant};

use switchyard_e2e::*;

const TOKEN: &str = "console-admin-token-for-e2e";
const SECRET: &str = "watsi-secret-for-console";

/// acme: Watsi into `crm` (http, to `receiver`) and `audit` (a file).
fn acme(receiver: &Receiver) -> Workspace {
    Workspace::new("acme")
        .vendor(Vendor::new("watsi", &[SECRET]))
        .http_sink("crm", HttpSink::new(receiver.url()))
        .file_sink("audit")
        .route(Route::new("*", &["crm", "audit"]))
}

/// The session cookie's `name=value` from a sign-in answer.
fn session_of(reply: &Reply) -> String {
    let cookie = reply.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_owned()
}

#[test]
fn the_console_needs_a_session_and_its_changes_need_the_csrf_token_from_its_own_origin() {
    let receiver = Receiver::start(Mode::Accept);
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().admin_token(TOKEN).workspace(acme(&receiver)));
    let host = server.admin_addr().to_string();
    let origin = format!("http://{host}");

    // Without a session: the sign-in page at every view's URL, its own files, nothing else.
    let page = server.operator_get("/console/events/01HZZZZZZZZZZZZZZZZZZZZZZZ");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Admin token"), "{}", page.body);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(server.operator_get("/console/assets/signin.js").status, 200);
    assert_eq!(server.operator_get("/console/assets/app.js").status, 401);
    server
        .operator_get("/console/api/queues")
        .expect_error(401, "signed_out");
    server
        .operator_get("/console/session")
        .expect_error(401, "signed_out");

    let sign_in = |token: &str, origin: &str| {
        let body = json!({ "token": token }).to_string();
        let headers = [("Content-Type", "application/json"), ("Origin", origin)];
        server.operator_request("POST", "/console/session", &headers, Some(body.as_bytes()))
    };
    sign_in("not-the-token", &origin).expect_error(401, "unauthorized");
    sign_in(TOKEN, "http://attacker.example").expect_error(403, "cross_origin");
    let signed_in = sign_in(TOKEN, &origin);
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let cookie = signed_in.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = session_of(&signed_in);

    // With it: the console page, its files, the API.
    let cookie = ("Cookie", session.as_str());
    let app = server.operator_request("GET", "/console/", &[cookie], None);
    assert!(app.body.contains("/console/assets/app.js"), "{}", app.body);
    let asset = server.operator_request("GET", "/console/assets/app.js", &[cookie], None);
    assert_eq!(asset.status, 200);
    let queues = server.operator_request("GET", "/console/api/queues", &[cookie], None);
    assert_eq!(queues.json()["sinks"][0]["sink"], "audit", "{queues:?}");
    let csrf = server.operator_request("GET", "/console/session", &[cookie], None);
    let csrf = csrf.json()["csrf"].as_str().unwrap().to_owned();

    // A change without the token, with a forged one, or from another site: refused.
    let replay = "/console/api/workspaces/acme/sinks/crm/dead-letters/replay";
    let post = |headers: &[(&str, &str)]| server.operator_request("POST", replay, headers, None);
    post(&[cookie]).expect_error(403, "csrf");
    post(&[cookie, ("X-Switchyard-CSRF", "forged")]).expect_error(403, "csrf");
    let token = ("X-Switchyard-CSRF", csrf.as_str());
    post(&[cookie, token, ("Sec-Fetch-Site", "cross-site")]).expect_error(403, "cross_origin");
    let good = post(&[cookie, token, ("Origin", origin.as_str())]);
    assert_eq!(good.json()["replayed"], 0, "{good:?}");

    // Search, through the console's API: the event, with each sink's status.
    let body = r#"{"type":"message.received","id":"evt_console_search","data":{"text":"hi"}}"#;
    let id = server
        .deliver("acme", &WATSI, SECRET, body, &[])
        .expect_accepted();
    let search = |query: &str| {
        let url = format!("/console/api/events?{query}");
        let found = server.operator_request("GET", &url, &[cookie], None);
        assert_eq!(found.status, 200, "{found:?}");
        found.json()
    };
    // The index entry is written behind the answer: poll until it is there.
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    let found = loop {
        let found = search("type=message.*&q=evt_console_search");
        if found["events"][0]["id"] == id.as_str() {
            break found;
        }
        assert!(Instant::now() < deadline, "never found: {found}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(found["events"][0]["type"], "message.received", "{found}");
    let sinks: Vec<&str> = (found["events"][0]["sinks"].as_array().unwrap().iter())
        .map(|s| s["sink"].as_str().unwrap())
        .collect();
    assert_eq!(sinks, ["crm", "audit"], "{found}");
    assert_eq!(search("type=order.*")["events"], json!([]));
    server
        .operator_request("GET", "/console/api/events?status=lost", &[cookie], None)
        .expect_error(400, "invalid_query");

    // Signing out ends the session.
    let out = server.operator_request("DELETE", "/console/session", &[cookie, token], None);
    assert_eq!(out.status, 200, "{out:?}");
    server
        .operator_request("GET", "/console/api/queues", &[cookie], None)
        .expect_error(401, "signed_out");
}

/// The errors the browser logged since the last look.
fn errors(browser: &Browser) -> Vec<serde_json::Value> {
    let log = browser.console_log();
    log.into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .collect()
}

#[test]
fn in_a_browser_an_operator_signs_in_finds_a_dead_letter_replays_it_and_sees_it_delivered() {
    let receiver = Receiver::start(Mode::Fail(400));
    let dir = TestDir::new();
    let server = dir.serve(&Config::new().admin_token(TOKEN).workspace(acme(&receiver)));
    let body = r#"{"type":"message.received","id":"evt_console_1","data":{"text":"hello","api_key":"sk_live_never_shown"}}"#;
    let id = server
        .deliver("acme", &WATSI, SECRET, body, &[])
        .expect_accepted();
    let audit = dir.sink("acme", "audit");
    audit.wait_for(&id);
    // A 400 is a refusal for good: the event is a dead letter of crm at once.
    let auth = format!("Bearer {TOKEN}");
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    while server
        .operator_request("GET", "/admin/queues", &[("Authorization", &auth)], None)
        .json()["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["sink"] != "crm" || s["dead"] != 1)
    {
        assert!(Instant::now() < deadline, "no dead letter in crm");
        std::thread::sleep(Duration::from_millis(20));
    }
    receiver.set_mode(Mode::Accept);

    let browser = Browser::start();
    let console = server.admin_url("/console");
    // A pasted link to the event: the sign-in page, then the event itself.
    browser.goto(&format!("{console}/events/{id}"));
    browser.fill("#token", TOKEN);
    browser.click("#sign-in button[type=submit]");
    browser.wait_for_text("main h1", &format!("Event {id}"));
    let crm = "[data-sink=crm]";
    browser.wait_for_text(crm, "dead");
    browser.wait_for_text(crm, "answered HTTP 400");
    let shown = browser.page_text();
    assert!(shown.contains("evt_console_1"), "{shown}");
    assert!(
        !shown.contains("sk_live_never_shown"),
        "a secret-looking key is shown: {shown}"
    );
    assert!(shown.contains("masked"), "{shown}");
    assert!(
        shown.contains("request headers"),
        "the view says what is not kept: {shown}"
    );

    // The overview lists both sinks with their dead letters, and says it refreshed.
    browser.goto(&format!("{console}/"));
    browser.wait_for_text("#sinks", "crm");
    browser.wait_for_text("#status", "Updated at");
    let rows = browser
        .script("return [...document.querySelectorAll('#sinks tbody tr')].map(r => r.innerText)");
    let crm_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r.as_str().unwrap().starts_with("crm"));
    let crm_row = crm_row.unwrap_or_else(|| panic!("no crm row: {rows}"));
    assert!(
        crm_row.as_str().unwrap().trim_end().ends_with('1'),
        "one dead letter: {crm_row}"
    );

    // The sink's page: replay the dead letter; it is delivered.
    browser.click("#sinks a[href='/console/sinks/acme/crm']");
    browser.wait_for_text("main h1", "Sink crm of acme");
    browser.click(&format!("button[aria-label='Replay {id}']"));
    browser.wait_for_text("#status", &format!("Replayed {id}"));
    receiver.wait_for_delivered(std::slice::from_ref(&id), DELIVERY_DEADLINE);
    browser.wait_for_text("main", "No dead letters.");
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    loop {
        browser.goto(&format!("{console}/events/{id}"));
        let card = browser.wait_for_text(crm, "Attempts");
        if card.contains("delivered") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "crm never shows delivered: {card}"
        );
    }

    // Deliver again, to the file sink only.
    browser.click("[data-sink=audit] button");
    browser.wait_for_text("#status", "queued again for audit");
    audit.wait_for_copies(&id, 2);

    // Everything came from the console itself, and nothing went wrong in the page.
    let loaded = browser.script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])",
    );
    let own = server.admin_url("/");
    for url in loaded.as_array().unwrap() {
        assert!(
            url.as_str().unwrap().starts_with(&own),
            "loaded from elsewhere: {url}"
        );
    }

    // The search form keeps its fields in the URL; its results link to the event's page.
    browser.goto(&format!(
        "{console}/events?type=message.*&sink=crm&status=delivered"
    ));
    browser.wait_for_text("#results", &id);
    browser.wait_for_text("#results [data-sink=crm]", "crm: delivered");
    let field = browser.script("return document.querySelector('input[name=type]').value");
    assert_eq!(field, "message.*");
    let url = browser.url();
    assert!(
        url.ends_with("/console/events?type=message.*&sink=crm&status=delivered"),
        "{url}"
    );
    browser.goto(&format!("{console}/events?type=message.*&status=dead"));
    browser.wait_for_text("#results", "No event matches.");
    browser.goto(&format!("{console}/events?type=message.*"));
    browser.click(&format!("#results a[href='/console/events/{id}']"));
    browser.wait_for_text("main h1", &format!("Event {id}"));
    assert_eq!(errors(&browser), Vec::<serde_json::Value>::new());
}

//! The console's files, built into the binary: nothing is fetched from anywhere else, so the
//! console works with no network and a strict Content-Security-Policy.

/// A file the console serves.
pub struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
    /// Served without a session: the sign-in page needs it.
    pub public: bool,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The page every view's URL serves to a signed-in browser; its script picks the view.
pub const APP: &[u8] = include_bytes!("assets/app.html");
/// What every console URL serves without a session.
pub const SIGN_IN: &[u8] = include_bytes!("assets/signin.html");
pub const HTML_TYPE: &str = HTML;

/// `/console/assets/{name}`.
pub fn find(name: &str) -> Option<Asset> {
    let (body, content_type, public): (&'static [u8], _, _) = match name {
        "console.css" => (include_bytes!("assets/console.css"), CSS, true),
        "favicon.svg" => (include_bytes!("assets/favicon.svg"), "image/svg+xml", true),
        "signin.js" => (include_bytes!("assets/signin.js"), JS, true),
        "app.js" => (include_bytes!("assets/app.js"), JS, false),
        "api.js" => (include_bytes!("assets/api.js"), JS, false),
        "dom.js" => (include_bytes!("assets/dom.js"), JS, false),
        "overview.js" => (include_bytes!("assets/overview.js"), JS, false),
        "events.js" => (include_bytes!("assets/events.js"), JS, false),
        "event.js" => (include_bytes!("assets/event.js"), JS, false),
        "sink.js" => (include_bytes!("assets/sink.js"), JS, false),
        _ => return None,
    };
    Some(Asset {
        body,
        content_type,
        public,
    })
}

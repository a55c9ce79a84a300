//! docs/writing-a-plugin.md shows a plugin's whole source: it must be the template's
//! (templates/vendor-plugin/src/lib.rs), whose build and tests run, so the page never shows code
//! that no longer compiles.

use std::path::Path;

/// The `rust` block that follows the line naming `plugins/acmechat/src/lib.rs`.
fn shown_code(doc: &str) -> Option<&str> {
    let named = doc.find("`plugins/acmechat/src/lib.rs`")?;
    let start = named + doc[named..].find("```rust\n")? + "```rust\n".len();
    let end = start + doc[start..].find("\n```\n")? + 1;
    Some(&doc[start..end])
}

#[test]
fn the_guide_shows_the_templates_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/writing-a-plugin.md")).unwrap();
    let template =
        std::fs::read_to_string(root.join("templates/vendor-plugin/src/lib.rs")).unwrap();
    let shown = shown_code(&doc).expect("the guide has no rust block after its lib.rs line");
    assert!(
        shown == template,
        "docs/writing-a-plugin.md's plugin code differs from templates/vendor-plugin/src/lib.rs: \
         copy the template's file into the guide"
    );
}

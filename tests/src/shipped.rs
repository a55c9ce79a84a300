//! Files as the project ships them. The checkout's `routes.yaml` and `examples/` are the user's
//! to edit (the plugin guide has them add a vendor to routes.yaml), so a test of the shipped demo
//! reads the committed version, `git show HEAD:<path>`, never the working copy: an edit by the
//! user cannot break the suite, and the test still fails when what the project commits is wrong.
//! A checkout that is not a git repository (an unpacked source archive) has no edits to tell
//! apart, and its file is read as it is.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::tool;

/// The text of `relative` (a path from the workspace root, such as `routes.yaml`) as committed
/// in `HEAD`, or as it is in a checkout without git. Panics if it cannot be read.
#[track_caller]
pub fn shipped_file(relative: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e package has a parent directory");
    // `.git` is a directory in a clone and a file in a worktree.
    if !root.join(".git").exists() {
        let path = root.join(relative);
        return std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    }
    let out = Command::new(tool("git"))
        .arg("-C")
        .arg(root)
        .args(["show", &format!("HEAD:{relative}")])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run git: {e}"));
    assert!(
        out.status.success(),
        "`git show HEAD:{relative}` in {} failed ({}): the test reads the committed file, not \
         the working copy\n{}",
        root.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{relative} is not UTF-8: {e}"))
}

//! The independent checkers the tests run: the Python ones of `tests/python/` (from PyPI, in the
//! virtualenv `deploy/test` prepares) and the JavaScript ones of `tests/node/` (from npm).

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The virtualenv's `bin/`: beside `E2E_PYTHON` when `deploy/test` set it, else `deploy/.venv`.
fn venv_bin() -> PathBuf {
    match std::env::var_os("E2E_PYTHON") {
        Some(python) => PathBuf::from(python)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
        None => PathBuf::from(format!(
            "{}/../deploy/.venv/bin",
            env!("CARGO_MANIFEST_DIR")
        )),
    }
}

/// Runs `command`, feeding it `input`; returns whether it succeeded and what it printed
/// (stdout, then stderr).
pub fn run(mut command: Command, input: &str) -> (bool, String) {
    use std::io::Write;
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{shown}: {e} (./deploy/test installs the checkers)"));
    let mut stdin = child.stdin.take().expect("stdin");
    // A checker that exits before reading all its input is judged by its exit status.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().expect("the checker ran");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// Runs `tests/python/<script>` with the virtualenv's Python, feeding it `input`.
pub fn python(script: &str, input: &str) -> (bool, String) {
    let mut command = Command::new(venv_bin().join("python"));
    command.arg(format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR")));
    run(command, input)
}

/// Runs `tests/node/<script>` with Node.js, feeding it `input` (its packages are those of
/// `tests/node/package-lock.json`, installed by `deploy/test`).
pub fn node(script: &str, input: &str) -> (bool, String) {
    let mut command = Command::new("node");
    command
        .current_dir(format!("{}/node", env!("CARGO_MANIFEST_DIR")))
        .arg(script);
    run(command, input)
}

/// A command running one of the virtualenv's programs, such as `st` (schemathesis).
pub fn venv_program(name: &str) -> Command {
    Command::new(venv_bin().join(name))
}

//! The independent checkers of `tests/python/`, run from the tests.

/// Runs `tests/python/<script>` with the Python that `deploy/test` prepared (`E2E_PYTHON`, else
/// `deploy/.venv/bin/python`), feeding it `input`; returns whether it succeeded and what it
/// printed.
pub fn python(script: &str, input: &str) -> (bool, String) {
    use std::io::Write;
    let python = std::env::var("E2E_PYTHON")
        .unwrap_or_else(|_| format!("{}/../deploy/.venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    let script = format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(&python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python} {script}: {e} (./deploy/test installs the Python checkers)")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("written");
    let out = child.wait_with_output().expect("the checker ran");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

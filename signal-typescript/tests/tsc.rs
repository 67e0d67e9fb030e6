//! The generated modules of a sample hub (tests/sample) checked by the
//! TypeScript compiler from the project's node_modules (`npm ci` installs it):
//! a file that uses every call and handler compiles under `--strict` and
//! stricter flags, a file of deliberate mistakes fails with exactly the
//! expected errors, the plain JavaScript module type-checks through its
//! `.d.ts`, and both modules drive the official `@microsoft/signalr` client as
//! expected.

mod sample;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use signal_typescript::{Options, render};

/// The workspace root, whose node_modules holds typescript and
/// @microsoft/signalr.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// node_modules, or a failure that says how to get it.
fn node_modules() -> PathBuf {
    let modules = root().join("node_modules");
    for needed in ["typescript/bin/tsc", "@microsoft/signalr/package.json"] {
        assert!(
            modules.join(needed).exists(),
            "{} is missing: run `npm ci` in {} (scripts/test does) to install the npm \
             packages these checks need",
            modules.join(needed).display(),
            root().display()
        );
    }
    modules
}

fn node() -> Command {
    let mut command = Command::new("node");
    command.env("SIGNAL_ROOT", root());
    command
}

fn run(mut command: Command) -> Output {
    match command.output() {
        Ok(output) => output,
        Err(e) => {
            panic!("cannot run {command:?}: {e} (is Node.js installed? scripts/test installs it)")
        }
    }
}

/// `tsc --noEmit --strict -p {dir}/{config}`, its output as text.
fn tsc(dir: &Path, config: &str) -> (bool, String) {
    let mut command = node();
    command
        .arg(node_modules().join("typescript/bin/tsc"))
        .args(["--noEmit", "--strict", "--pretty", "false", "-p"])
        .arg(dir.join(config))
        .current_dir(dir);
    let output = run(command);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A temporary directory holding the sample hub's modules: `chat.ts` at the
/// top, `js/chat.js` and `js/chat.d.ts` (apart, so that `./chat.js` resolves
/// to the declarations and not to `chat.ts`).
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let module = render(&sample::chat(), &Options::default()).expect("the sample renders");
    fs::create_dir(dir.path().join("js")).unwrap();
    fs::write(dir.path().join("chat.ts"), &module.typescript).unwrap();
    fs::write(dir.path().join("js/chat.js"), &module.javascript).unwrap();
    fs::write(dir.path().join("js/chat.d.ts"), &module.declarations).unwrap();
    fs::write(
        dir.path().join("js/package.json"),
        "{ \"type\": \"module\" }\n",
    )
    .unwrap();
    dir
}

/// A tsconfig checking `files` with strict settings, `@microsoft/signalr`
/// resolved from the workspace's node_modules (the package ships its .d.ts).
fn tsconfig(dir: &Path, name: &str, files: &[&str], extra: serde_json::Value) {
    let signalr = node_modules().join("@microsoft/signalr");
    let mut options = json!({
        "target": "es2022",
        "module": "esnext",
        "moduleResolution": "bundler",
        "strict": true,
        "noEmit": true,
        "noUnusedLocals": true,
        "noUnusedParameters": true,
        "noImplicitReturns": true,
        "noFallthroughCasesInSwitch": true,
        "noUncheckedIndexedAccess": true,
        "exactOptionalPropertyTypes": true,
        "verbatimModuleSyntax": true,
        "erasableSyntaxOnly": true,
        "forceConsistentCasingInFileNames": true,
        "skipLibCheck": false,
        "types": [],
        "typeRoots": [],
        "paths": { "@microsoft/signalr": [signalr] },
    });
    let object = options.as_object_mut().unwrap();
    for (key, value) in extra.as_object().unwrap() {
        object.insert(key.clone(), value.clone());
    }
    let config = json!({ "compilerOptions": options, "files": files });
    fs::write(
        dir.join(name),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
}

#[test]
fn the_typescript_module_and_its_uses_compile_strictly() {
    let dir = project();
    fs::copy(fixture("uses.ts"), dir.path().join("uses.ts")).unwrap();
    // Declarations an exported API must spell out, checked on the module.
    tsconfig(
        dir.path(),
        "tsconfig.json",
        &["chat.ts", "uses.ts"],
        json!({ "isolatedDeclarations": true, "declaration": true }),
    );
    let (ok, output) = tsc(dir.path(), "tsconfig.json");
    assert!(ok, "tsc rejected chat.ts or uses.ts:\n{output}");
}

#[test]
fn awkward_names_and_shapes_compile_strictly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let module = render(&sample::edges(), &Options::default()).expect("the edges render");
    fs::write(dir.path().join("edges.ts"), &module.typescript).unwrap();
    fs::write(dir.path().join("edges.d.ts"), &module.declarations).unwrap();
    fs::write(dir.path().join("edges.js"), &module.javascript).unwrap();
    tsconfig(
        dir.path(),
        "tsconfig.json",
        &["edges.ts"],
        json!({ "isolatedDeclarations": true, "declaration": true }),
    );
    let (ok, output) = tsc(dir.path(), "tsconfig.json");
    assert!(
        ok,
        "tsc rejected edges.ts:\n{output}\n{}",
        module.typescript
    );
    // The .js, checked as JavaScript against nothing but itself.
    tsconfig(
        dir.path(),
        "tsconfig.js.json",
        &["edges.js"],
        json!({ "allowJs": true, "checkJs": false, "outDir": "out" }),
    );
    let (ok, output) = tsc(dir.path(), "tsconfig.js.json");
    assert!(
        ok,
        "tsc rejected edges.js:\n{output}\n{}",
        module.javascript
    );
    tsconfig(dir.path(), "tsconfig.dts.json", &["edges.d.ts"], json!({}));
    let (ok, output) = tsc(dir.path(), "tsconfig.dts.json");
    assert!(
        ok,
        "tsc rejected edges.d.ts:\n{output}\n{}",
        module.declarations
    );
}

#[test]
fn the_javascript_module_type_checks_through_its_declarations() {
    let dir = project();
    fs::copy(fixture("uses.js"), dir.path().join("js/uses.js")).unwrap();
    tsconfig(
        dir.path(),
        "tsconfig.js.json",
        &["js/chat.d.ts", "js/uses.js"],
        json!({ "allowJs": true, "checkJs": true }),
    );
    let (ok, output) = tsc(dir.path(), "tsconfig.js.json");
    assert!(ok, "tsc rejected js/chat.d.ts or js/uses.js:\n{output}");
}

/// An error that a `// expect TSnnnn: text` marker asks for.
#[derive(Debug)]
struct Expected {
    line: usize,
    code: String,
    text: String,
}

#[test]
fn mistakes_fail_to_compile_with_the_expected_errors() {
    let dir = project();
    let source = fs::read_to_string(fixture("mistakes.ts")).unwrap();
    fs::write(dir.path().join("mistakes.ts"), &source).unwrap();
    tsconfig(dir.path(), "tsconfig.json", &["mistakes.ts"], json!({}));
    let (ok, output) = tsc(dir.path(), "tsconfig.json");
    assert!(!ok, "mistakes.ts compiled:\n{output}");

    let expected: Vec<Expected> = source
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let marker = line.split("// expect ").nth(1)?;
            let (code, text) = marker.split_once(": ")?;
            Some(Expected {
                line: i + 1,
                code: code.to_owned(),
                text: text.to_owned(),
            })
        })
        .collect();
    assert!(
        expected.len() >= 3,
        "the markers of mistakes.ts are missing"
    );

    // `mistakes.ts(13,34): error TS2345: Argument of type …`, then indented
    // elaboration lines that belong to it.
    let mut errors: Vec<(String, usize, String, String)> = Vec::new();
    for line in output.lines() {
        if let Some((location, rest)) = line.split_once("): error ") {
            let (file, position) = location.rsplit_once('(').unwrap_or((location, "0,0"));
            let row = position.split(',').next().unwrap().parse().unwrap_or(0);
            let (code, message) = rest.split_once(": ").unwrap_or((rest, ""));
            errors.push((file.to_owned(), row, code.to_owned(), message.to_owned()));
        } else if let Some(last) = errors.last_mut() {
            last.3.push('\n');
            last.3.push_str(line.trim());
        }
    }

    for want in &expected {
        assert!(
            errors
                .iter()
                .any(|(file, row, code, message)| file == "mistakes.ts"
                    && *row == want.line
                    && want.code.split('|').any(|c| c == code)
                    && message.contains(&want.text)),
            "expected {} `{}` at mistakes.ts line {}; tsc said:\n{output}",
            want.code,
            want.text,
            want.line
        );
    }
    for (file, row, code, message) in &errors {
        assert!(
            file == "mistakes.ts" && expected.iter().any(|want| want.line == *row),
            "unexpected error {file}({row}) {code}: {message}\n(all of tsc's output:\n{output})"
        );
    }
}

#[test]
fn both_modules_drive_the_official_client() {
    let dir = project();
    // The .ts module, compiled to JavaScript as a bundler or tsc would.
    tsconfig(
        dir.path(),
        "tsconfig.emit.json",
        &["chat.ts"],
        json!({ "noEmit": false, "outDir": "ts-out", "declaration": false }),
    );
    let mut command = node();
    command
        .arg(node_modules().join("typescript/bin/tsc"))
        .args(["--pretty", "false", "-p", "tsconfig.emit.json"])
        .current_dir(dir.path());
    let output = run(command);
    assert!(
        output.status.success(),
        "tsc could not compile chat.ts:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    fs::write(
        dir.path().join("ts-out/package.json"),
        "{ \"type\": \"module\" }\n",
    )
    .unwrap();

    for module in ["js/chat.js", "ts-out/chat.js"] {
        let mut command = node();
        command
            .arg(fixture("runtime.mjs"))
            .arg(dir.path().join(module))
            .current_dir(dir.path());
        let output = run(command);
        assert!(
            output.status.success()
                && String::from_utf8_lossy(&output.stdout).contains("runtime checks passed"),
            "the runtime checks failed on {module}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

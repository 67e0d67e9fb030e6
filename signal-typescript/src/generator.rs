//! Writing modules from a build script.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use signal_core::descriptor::HubDescriptor;

use crate::error::Error;
use crate::{Options, render};

/// Writes the modules of one or more hubs into a directory: `{stem}.ts`,
/// `{stem}.js` and `{stem}.d.ts` for each, rewriting only files whose bytes
/// change. Prints nothing (to cargo or anyone).
#[derive(Debug, Clone)]
pub struct Generator {
    out_dir: PathBuf,
    options: Options,
    hubs: Vec<(HubDescriptor, String)>,
    typescript: bool,
    javascript: bool,
}

/// A file [`Generator::write`] considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Its path.
    pub path: PathBuf,
    /// Whether it was written: `false` when it already held these bytes.
    pub changed: bool,
}

impl Generator {
    /// A generator writing into `out_dir` (created when missing; a relative
    /// path is relative to the current directory, the package's directory in
    /// a build script).
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Generator {
            out_dir: out_dir.into(),
            options: Options::default(),
            hubs: Vec::new(),
            typescript: true,
            javascript: true,
        }
    }

    /// Uses `options` for every hub.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Adds a hub, written to files named `{stem}.ts`, `{stem}.js` and
    /// `{stem}.d.ts`.
    pub fn hub(mut self, descriptor: HubDescriptor, stem: impl Into<String>) -> Self {
        self.hubs.push((descriptor, stem.into()));
        self
    }

    /// Whether to write the `.ts` module (default: yes).
    pub fn typescript(mut self, yes: bool) -> Self {
        self.typescript = yes;
        self
    }

    /// Whether to write the `.js` module and its `.d.ts` (default: yes).
    pub fn javascript(mut self, yes: bool) -> Self {
        self.javascript = yes;
        self
    }

    /// Renders every hub, then writes the files whose contents changed. Nothing
    /// is written when any hub fails to render.
    pub fn write(&self) -> Result<Vec<Written>, Error> {
        let mut files: Vec<(PathBuf, String)> = Vec::new();
        for (i, (hub, stem)) in self.hubs.iter().enumerate() {
            check_stem(stem)?;
            if let Some((first, _)) = self.hubs[..i].iter().find(|(_, s)| s == stem) {
                return Err(Error::DuplicateStem {
                    stem: stem.clone(),
                    first: first.name.clone(),
                    second: hub.name.clone(),
                });
            }
            let module = render(hub, &self.options)?;
            if self.typescript {
                files.push((self.out_dir.join(format!("{stem}.ts")), module.typescript));
            }
            if self.javascript {
                files.push((self.out_dir.join(format!("{stem}.js")), module.javascript));
                files.push((
                    self.out_dir.join(format!("{stem}.d.ts")),
                    module.declarations,
                ));
            }
        }
        if files.is_empty() {
            return Ok(Vec::new());
        }
        fs::create_dir_all(&self.out_dir).map_err(|source| Error::Io {
            action: "create the directory",
            path: self.out_dir.clone(),
            source,
        })?;
        files
            .into_iter()
            .map(|(path, contents)| {
                let changed = write_if_changed(&path, contents.as_bytes())?;
                Ok(Written { path, changed })
            })
            .collect()
    }
}

fn check_stem(stem: &str) -> Result<(), Error> {
    let plain = !stem.is_empty()
        && !stem.starts_with('.')
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        Ok(())
    } else {
        Err(Error::InvalidStem {
            stem: stem.to_owned(),
        })
    }
}

/// Writes `contents` to `path` unless it already holds them; through a
/// temporary file and a rename, so readers never see half a file.
fn write_if_changed(path: &Path, contents: &[u8]) -> Result<bool, Error> {
    match fs::read(path) {
        Ok(existing) if existing == contents => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let io_error = |source| Error::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    fs::write(&temporary, contents).map_err(io_error)?;
    if let Err(source) = fs::rename(&temporary, path) {
        let _ = fs::remove_file(&temporary);
        return Err(io_error(source));
    }
    Ok(true)
}

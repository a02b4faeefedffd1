//! The host's apt configuration, read to point guest builds at the same
//! Debian mirror: host suite detection and sources for another suite.
//!
//! No mirror is ever named by this crate. The URIs come from the host's
//! `/etc/apt/sources.list`, `/etc/apt/sources.list.d/*.list` (one-line
//! format) and `/etc/apt/sources.list.d/*.sources` (deb822); only the suite
//! is changed. Everything but [`host_codename`] and [`read_host_sources`] is a
//! pure function over text.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::control;

/// Where the host's apt configuration lives.
pub const ETC_APT: &str = "/etc/apt";

/// Errors reading or mapping the host's apt configuration.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `/etc/os-release` has no `VERSION_CODENAME`.
    #[error("{} has no VERSION_CODENAME (not a Debian release?)", path.display())]
    NoCodename {
        /// The os-release file.
        path: PathBuf,
    },
    /// No enabled `deb` entry for the host's release was found.
    #[error(
        "no enabled Debian `deb` entry for suite `{codename}` (with component main) in the \
         host's apt sources ({files}); cannot choose a mirror for the guest"
    )]
    NoDebianEntry {
        /// The host codename looked for.
        codename: String,
        /// The source files that were read, comma-separated.
        files: String,
    },
}

/// One apt source entry (a deb822 stanza or a one-line `deb` line).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceEntry {
    /// `deb`, `deb-src`.
    pub types: Vec<String>,
    /// Archive URIs.
    pub uris: Vec<String>,
    /// Suites (`bookworm`, `bookworm-updates`, ...).
    pub suites: Vec<String>,
    /// Components (`main`, `contrib`, ...).
    pub components: Vec<String>,
    /// The `Signed-By` value verbatim: a keyring path, fingerprints, or an
    /// embedded key whose continuation lines keep their leading space.
    pub signed_by: Option<String>,
}

impl SourceEntry {
    fn is_deb(&self) -> bool {
        self.types.iter().any(|t| t == "deb")
    }
}

/// The `VERSION_CODENAME` of an os-release text.
pub fn os_release_codename(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("VERSION_CODENAME=")?;
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The host's release codename, from `/etc/os-release`.
pub fn host_codename() -> Result<String, AptError> {
    let path = Path::new("/etc/os-release");
    let text = fs::read_to_string(path).map_err(|source| AptError::Read {
        path: path.into(),
        source,
    })?;
    os_release_codename(&text).ok_or_else(|| AptError::NoCodename { path: path.into() })
}

/// The host's suite: its release codename (`bookworm`), the default suite
/// of the guest userland.
pub fn host_suite() -> Result<String, AptError> {
    host_codename()
}

/// Parses deb822 `.sources` text. Stanzas with `Enabled: no` are dropped.
pub fn parse_deb822(text: &str) -> Vec<SourceEntry> {
    control::parse(text)
        .iter()
        .filter(|st| !matches!(st.get("Enabled"), Some(v) if v.trim().eq_ignore_ascii_case("no")))
        .map(|st| {
            let words = |k: &str| -> Vec<String> {
                st.get(k)
                    .map(|v| v.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default()
            };
            SourceEntry {
                types: words("Types"),
                uris: words("URIs"),
                suites: words("Suites"),
                components: words("Components"),
                signed_by: st.get("Signed-By").map(|v| v.trim().to_string()),
            }
        })
        .collect()
}

/// Parses one-line-format `sources.list` text (`deb [opts] uri suite comp...`).
pub fn parse_one_line(text: &str) -> Vec<SourceEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((ty, mut rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if ty != "deb" && ty != "deb-src" {
            continue;
        }
        rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(r) = rest.strip_prefix('[') {
            let Some((opts, after)) = r.split_once(']') else {
                continue;
            };
            for opt in opts.split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after;
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(SourceEntry {
            types: vec![ty.to_string()],
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            signed_by,
        });
    }
    out
}

/// Reads every enabled entry under an apt configuration directory
/// (normally [`ETC_APT`]): `sources.list`, then `sources.list.d/*.list` and
/// `*.sources` in name order. Files with any other ending (for example
/// `.list.disabled`, `.sources.bak`) are ignored, as apt ignores them.
/// Returns the entries and the files read.
pub fn read_sources_dir(etc_apt: &Path) -> Result<(Vec<SourceEntry>, Vec<PathBuf>), AptError> {
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|source| AptError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut entries = Vec::new();
    let mut files = Vec::new();
    let list = etc_apt.join("sources.list");
    if list.is_file() {
        entries.extend(parse_one_line(&read(&list)?));
        files.push(list);
    }
    let dir = etc_apt.join("sources.list.d");
    if dir.is_dir() {
        let mut names: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|source| AptError::Read {
                path: dir.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for p in names {
            match p.extension().and_then(|e| e.to_str()) {
                Some("list") => entries.extend(parse_one_line(&read(&p)?)),
                Some("sources") => entries.extend(parse_deb822(&read(&p)?)),
                _ => continue,
            }
            files.push(p);
        }
    }
    Ok((entries, files))
}

/// The host's enabled apt entries and the files they came from.
pub fn read_host_sources() -> Result<(Vec<SourceEntry>, Vec<PathBuf>), AptError> {
    read_sources_dir(Path::new(ETC_APT))
}

/// Suites that have no `-updates` / `-security` companions.
fn is_unstable(suite: &str) -> bool {
    matches!(suite, "sid" | "unstable" | "experimental" | "rc-buggy")
}

/// Symbolic suite names accepted when the host's sources do not name its
/// codename (e.g. `deb <uri> stable main`).
const SYMBOLIC: &[&str] = &["stable", "oldstable", "testing", "unstable", "sid"];

fn stock_key(e: &SourceEntry) -> bool {
    match e.signed_by.as_deref() {
        None => true,
        Some(s) => s.contains("debian-archive-keyring") || s.contains("debian-keyring"),
    }
}

/// Picks the host's Debian entries: those for `base` (with component `main`),
/// preferring the ones signed with the stock Debian keyring (third-party
/// repositories that reuse the codename are usually signed otherwise).
fn debian_entries<'a>(entries: &'a [SourceEntry], suite: &str) -> Vec<&'a SourceEntry> {
    let all: Vec<&SourceEntry> = entries
        .iter()
        .filter(|e| e.is_deb() && e.suites.iter().any(|s| s == suite))
        .filter(|e| e.components.iter().any(|c| c == "main"))
        .collect();
    let stock: Vec<&SourceEntry> = all.iter().copied().filter(|e| stock_key(e)).collect();
    if stock.is_empty() {
        all
    } else {
        stock
    }
}

fn push_unique(v: &mut Vec<String>, items: &[String]) {
    for i in items {
        if !v.contains(i) {
            v.push(i.clone());
        }
    }
}

fn merged(entries: &[&SourceEntry]) -> SourceEntry {
    let mut m = SourceEntry {
        types: vec!["deb".into()],
        ..SourceEntry::default()
    };
    for e in entries {
        push_unique(&mut m.uris, &e.uris);
        push_unique(&mut m.components, &e.components);
        if m.signed_by.is_none() {
            m.signed_by.clone_from(&e.signed_by);
        }
    }
    m
}

fn write_stanza(out: &mut String, e: &SourceEntry, suites: &[String]) {
    if !out.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "Types: deb");
    let _ = writeln!(out, "URIs: {}", e.uris.join(" "));
    let _ = writeln!(out, "Suites: {}", suites.join(" "));
    let _ = writeln!(out, "Components: {}", e.components.join(" "));
    if let Some(s) = &e.signed_by {
        let _ = writeln!(out, "Signed-By: {s}");
    }
}

/// Deb822 sources text for `suite`, from the host's entries.
///
/// The main archive entry is the one listing the host's `codename` (or, if
/// none does, a symbolic suite such as `stable`); its URIs, Components and
/// Signed-By are kept, with Suites `suite`, plus `suite-updates` when the
/// host has `<codename>-updates` and `suite` is not unstable. The host's
/// `<codename>-security` entry becomes `suite-security`, except for
/// unstable suites. `files` only serves the error message.
pub fn sources_for_suite(
    entries: &[SourceEntry],
    codename: &str,
    suite: &str,
    files: &[PathBuf],
) -> Result<String, AptError> {
    let mut base = codename;
    let mut main = debian_entries(entries, codename);
    if main.is_empty() {
        if let Some(sym) = SYMBOLIC
            .iter()
            .find(|s| !debian_entries(entries, s).is_empty())
        {
            base = sym;
            main = debian_entries(entries, sym);
        }
    }
    if main.is_empty() {
        return Err(AptError::NoDebianEntry {
            codename: codename.to_string(),
            files: files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    // `-updates` and `-security` companions: not for unstable suites, nor for a
    // `-backports` suite (fetched alone: the kernel is all that is taken from it).
    let stable = !is_unstable(suite) && !suite.ends_with("-backports");
    let updates = format!("{base}-updates");
    let had_updates = main.iter().any(|e| e.suites.contains(&updates))
        || !debian_entries(entries, &updates).is_empty();
    let mut suites = vec![suite.to_string()];
    if stable && had_updates {
        suites.push(format!("{suite}-updates"));
    }
    let mut out = String::new();
    write_stanza(&mut out, &merged(&main), &suites);
    if stable {
        let security = debian_entries(entries, &format!("{base}-security"));
        if !security.is_empty() {
            write_stanza(&mut out, &merged(&security), &[format!("{suite}-security")]);
        }
    }
    Ok(out)
}

/// [`sources_for_suite`] over the host's own configuration.
pub fn host_sources_for_suite(suite: &str) -> Result<String, AptError> {
    let codename = host_codename()?;
    let (entries, files) = read_host_sources()?;
    sources_for_suite(&entries, &codename, suite, &files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const DEB822_HOST: &str = "\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    const ONE_LINE_HOST: &str = "\
# deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb http://ftp.example.org/debian/ bookworm main contrib non-free-firmware
deb-src http://ftp.example.org/debian/ bookworm main
deb http://security.example.org/debian-security bookworm-security main contrib
";

    const NO_UPDATES_HOST: &str = "\
Types: deb deb-src
URIs: https://a.example/debian https://b.example/debian
Suites: bookworm
Components: main non-free
";

    const THIRD_PARTY_FIRST: &str = "\
deb [arch=amd64 signed-by=/etc/apt/keyrings/vendor.gpg] https://vendor.example/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm main
";

    const BOOKWORM_TO_TRIXIE: &str = "\
Types: deb
URIs: http://mirror.example/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    const BOOKWORM_TO_SID: &str = "\
Types: deb
URIs: http://mirror.example/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    const BOOKWORM_TO_BACKPORTS: &str = "\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    const ONE_LINE_TO_BOOKWORM: &str = "\
Types: deb
URIs: http://ftp.example.org/debian/
Suites: bookworm
Components: main contrib non-free-firmware

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main contrib
";

    const NO_UPDATES_TO_TRIXIE: &str = "\
Types: deb
URIs: https://a.example/debian https://b.example/debian
Suites: trixie
Components: main non-free
";

    const THIRD_PARTY_TO_TRIXIE: &str = "\
Types: deb
URIs: http://mirror.example/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    fn deb822(t: &str) -> Vec<SourceEntry> {
        parse_deb822(t)
    }
    fn one_line(t: &str) -> Vec<SourceEntry> {
        parse_one_line(t)
    }

    #[rstest]
    #[case::deb822_trixie(deb822(DEB822_HOST), "trixie", BOOKWORM_TO_TRIXIE)]
    #[case::deb822_sid(deb822(DEB822_HOST), "sid", BOOKWORM_TO_SID)]
    #[case::deb822_backports(deb822(DEB822_HOST), "bookworm-backports", BOOKWORM_TO_BACKPORTS)]
    #[case::deb822_unstable_alias(
        deb822(DEB822_HOST),
        "unstable",
        &BOOKWORM_TO_SID.replace("sid", "unstable")
    )]
    #[case::one_line_same_suite(one_line(ONE_LINE_HOST), "bookworm", ONE_LINE_TO_BOOKWORM)]
    #[case::no_updates_no_security(deb822(NO_UPDATES_HOST), "trixie", NO_UPDATES_TO_TRIXIE)]
    #[case::third_party_skipped(one_line(THIRD_PARTY_FIRST), "trixie", THIRD_PARTY_TO_TRIXIE)]
    fn maps_host_sources_to_suite(
        #[case] entries: Vec<SourceEntry>,
        #[case] suite: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(
            sources_for_suite(&entries, "bookworm", suite, &[]).unwrap(),
            expected
        );
    }

    #[test]
    fn symbolic_host_suite() {
        let e = parse_one_line(
            "deb http://m.example/debian stable main\n\
             deb http://m.example/debian stable-updates main\n\
             deb http://m.example/debian-security stable-security main\n",
        );
        let s = sources_for_suite(&e, "bookworm", "trixie", &[]).unwrap();
        assert!(s.contains("Suites: trixie trixie-updates\n"), "{s}");
        assert!(s.contains("URIs: http://m.example/debian-security\nSuites: trixie-security\n"));
    }

    #[test]
    fn no_debian_entry_names_codename_and_files() {
        let e = parse_one_line("deb https://vendor.example/apt nodistro main\n");
        let err =
            sources_for_suite(&e, "bookworm", "trixie", &[PathBuf::from("/x/a.list")]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`bookworm`") && msg.contains("/x/a.list"),
            "{msg}"
        );
    }

    #[rstest]
    #[case("VERSION_CODENAME=bookworm\nID=debian\n", Some("bookworm"))]
    #[case("ID=debian\nVERSION_CODENAME=\"trixie\"\n", Some("trixie"))]
    #[case("ID=debian\nVERSION_CODENAME=\n", None)]
    #[case("ID=debian\n", None)]
    fn codename(#[case] text: &str, #[case] expected: Option<&str>) {
        assert_eq!(os_release_codename(text).as_deref(), expected);
    }

    #[test]
    fn deb822_disabled_stanza_and_inline_key() {
        let text = "\
Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no

types: deb
uris: http://on.example/debian
suites: bookworm
components: main
signed-by:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 abc
 -----END PGP PUBLIC KEY BLOCK-----
";
        let e = parse_deb822(text);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].uris, ["http://on.example/debian"]);
        let key = e[0].signed_by.as_deref().unwrap();
        assert!(
            key.starts_with("-----BEGIN") && key.contains("\n .\n abc\n"),
            "{key:?}"
        );
        let out = sources_for_suite(&e, "bookworm", "sid", &[]).unwrap();
        assert!(out.ends_with("Signed-By: -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n"), "{out}");
    }

    #[test]
    fn one_line_options_and_comments() {
        let e = parse_one_line(
            "deb [ arch=amd64 signed-by=/k.gpg ] http://m.example/debian bookworm main # c\n\
             #deb http://x.example/debian bookworm main\n\
             garbage\n",
        );
        assert_eq!(
            e,
            vec![SourceEntry {
                types: vec!["deb".into()],
                uris: vec!["http://m.example/debian".into()],
                suites: vec!["bookworm".into()],
                components: vec!["main".into()],
                signed_by: Some("/k.gpg".into()),
            }]
        );
    }

    #[test]
    fn reads_only_list_and_sources_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("sources.list.d");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("debian.sources"), DEB822_HOST).unwrap();
        fs::write(
            d.join("vendor.list.disabled-by-admin"),
            "deb http://v.example/debian bookworm main\n",
        )
        .unwrap();
        fs::write(
            d.join("old.sources.bak"),
            "Types: deb\nURIs: http://bak.example/debian\nSuites: bookworm\nComponents: main\n",
        )
        .unwrap();
        fs::write(
            t.path().join("sources.list"),
            "deb http://l.example/debian bookworm-backports main\n",
        )
        .unwrap();
        let (entries, files) = read_sources_dir(t.path()).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        let uris: Vec<_> = entries.iter().flat_map(|e| e.uris.clone()).collect();
        assert_eq!(
            uris,
            [
                "http://l.example/debian",
                "http://mirror.example/debian",
                "http://mirror.example/debian-security"
            ]
        );
    }
}

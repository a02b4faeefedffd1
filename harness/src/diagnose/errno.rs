//! Finding an errno in tool output and naming it (`EBUSY`, not `-16`).

use nix::errno::Errno;

/// The symbolic name of an errno number, when it is one.
pub fn name(n: i32) -> Option<String> {
    let e = Errno::from_raw(n.abs());
    (e != Errno::UnknownErrno).then(|| format!("{e:?}"))
}

/// The errno a line of tool output carries, by name. Understood forms: `errno=N`,
/// `errno N`, `-N reported by netlink`, `(-N)`, and strerror texts (`Device or resource busy`).
pub fn find(line: &str) -> Option<String> {
    // A shell's "sh: 1: iptables: not found": the program's execve failed with ENOENT.
    if line.starts_with("sh: ") && line.trim_end().ends_with(": not found") {
        return Some("ENOENT".into());
    }
    number_after(line, "errno=")
        .or_else(|| number_after(line, "errno "))
        .and_then(name)
        .or_else(|| netlink(line))
        .or_else(|| negative_in_parens(line))
        .or_else(|| by_text(line))
}

/// The errno a line carries as a number only (`errno=N`, `-N reported by netlink`, `(-N)`,
/// a trailing `: -N`), not as strerror text: for lines that are evidence only by their place.
pub fn find_numeric(line: &str) -> Option<String> {
    number_after(line, "errno=")
        .or_else(|| number_after(line, "errno "))
        .and_then(name)
        .or_else(|| netlink(line))
        .or_else(|| negative_in_parens(line))
        .or_else(|| trailing_negative(line))
}

/// `... proto IPPROTO_IP: -2`: a criu step's return code at the end of its line. `-1` is
/// criu's generic failure, not EPERM.
fn trailing_negative(line: &str) -> Option<String> {
    let n: i32 = line.trim_end().rsplit_once(": -")?.1.parse().ok()?;
    (n > 1).then(|| name(n)).flatten()
}

/// The errno of the first line in `lines` that carries one.
pub fn find_in<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<String> {
    lines.into_iter().find_map(find)
}

fn number_after(line: &str, key: &str) -> Option<i32> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

fn netlink(line: &str) -> Option<String> {
    let end = line.find(" reported by netlink")?;
    let start = line[..end].rfind([' ', '('])? + 1;
    name(line[start..end].parse().ok()?)
}

/// `... missing (-2)`: criu's habit of printing a negative errno in parentheses. `(-1)` is
/// criu's generic failure, not EPERM, so it does not count.
fn negative_in_parens(line: &str) -> Option<String> {
    let start = line.rfind("(-")? + 2;
    let end = start + line[start..].find(')')?;
    let n: i32 = line[start..end].parse().ok()?;
    (n > 1).then(|| name(n)).flatten()
}

fn by_text(line: &str) -> Option<String> {
    (1..134)
        .map(Errno::from_raw)
        .filter(|e| *e != Errno::UnknownErrno)
        .map(|e| (e, strerror(e)))
        .filter(|(_, text)| line.contains(text))
        // The longest description wins: "No such device or address" over "No such device".
        .max_by_key(|(_, text)| text.len())
        .map(|(e, _)| format!("{e:?}"))
}

/// glibc's strerror() text, which tools print: nix's own wording where they differ.
fn strerror(e: Errno) -> &'static str {
    match e {
        Errno::EOPNOTSUPP => "Operation not supported",
        e => e.desc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        "Error (criu/libnetlink.c:84): ERROR -95 reported by netlink",
        Some("EOPNOTSUPP")
    )]
    #[case("Error (criu/mount.c:12): Can't open ./proc: errno=13", Some("EACCES"))]
    #[case(
        "Error (criu/sockets.c:628): sockets: Can't get 1:16 opt: Operation not supported",
        Some("EOPNOTSUPP")
    )]
    #[case(
        "lxc 20261126 ERROR cgfsng - Device or resource busy - Failed",
        Some("EBUSY")
    )]
    #[case(
        "Error (criu/cr-restore.c:1): Can't fork for 42: File exists",
        Some("EEXIST")
    )]
    #[case(
        "execvp(\"iptables-restore\", ...) failed: No such file or directory",
        Some("ENOENT")
    )]
    #[case("sh: 1: iptables: not found", Some("ENOENT"))]
    #[case(
        "Error (criu/sockets.c:209): sockets: Diag module missing (-2)",
        Some("ENOENT")
    )]
    #[case(
        "Error (criu/cr-dump.c:1635): Dump files (pid: 102) failed with -1",
        None
    )]
    #[case("Error (criu/x.c:1): something failed (-1)", None)]
    #[case("nothing to see", None)]
    fn errno_forms(#[case] line: &str, #[case] want: Option<&str>) {
        assert_eq!(find(line).as_deref(), want);
    }
}

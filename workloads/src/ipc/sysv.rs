//! What the System V IPC workloads share: their own IPC namespace (criu dumps System V
//! objects only as part of an IPC namespace the dumped tree owns) and the object lists in
//! `/proc/sysvipc`.

use crate::sys;
use nix::libc;

/// Moves the workload into a new IPC namespace (needs `CAP_SYS_ADMIN`): the objects it
/// makes are then its own, and a checkpoint of the workload takes them along.
pub fn own_namespace() -> Result<(), String> {
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWIPC) })
        .map(|_| ())
        .map_err(|e| format!("unshare(CLONE_NEWIPC): {e} (needs root)"))
}

/// One object line of `/proc/sysvipc/{shm,sem,msg}`: key, id, and the other columns by
/// header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: i32,
    pub id: i32,
    pub columns: Vec<(String, String)>,
}

impl Object {
    /// The value of column `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `/proc/sysvipc/*` text.
pub fn parse_objects(text: &str) -> Vec<Object> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<&str> = header.split_whitespace().collect();
    lines
        .filter_map(|line| {
            let values: Vec<&str> = line.split_whitespace().collect();
            let columns: Vec<(String, String)> = names
                .iter()
                .zip(&values)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let find = |n: &str| columns.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            Some(Object {
                key: find("key")?.parse().ok()?,
                id: find(names.get(1)?)?.parse().ok()?,
                columns,
            })
        })
        .collect()
}

/// The objects of one kind (`shm`, `sem`, `msg`) in the workload's IPC namespace.
pub fn objects(kind: &str) -> Result<Vec<Object>, String> {
    Ok(parse_objects(&crate::procfs::read(&format!(
        "/proc/sysvipc/{kind}"
    ))?))
}

/// Checks that the namespace holds exactly the objects `want` (key, id) of `kind`, and
/// gives them.
pub fn expect_objects(kind: &str, want: &[(i32, i32)]) -> Result<Vec<Object>, String> {
    let got = objects(kind)?;
    let mut ids: Vec<(i32, i32)> = got.iter().map(|o| (o.key, o.id)).collect();
    ids.sort();
    let mut want = want.to_vec();
    want.sort();
    if ids != want {
        let show = |v: &[(i32, i32)]| {
            v.iter()
                .map(|(k, i)| format!("key {k:#x} id {i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "/proc/sysvipc/{kind} lists [{}], expected [{}]",
            show(&ids),
            show(&want)
        ));
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_parse_by_header() {
        let text = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      atime      dtime      ctime\n1592590849          0   600         115          4     0     0     0     0     0     0          0          0 1700000000\n";
        let o = parse_objects(text);
        assert_eq!(o.len(), 1);
        assert_eq!((o[0].key, o[0].id), (0x5eed_0201, 0));
        assert_eq!(o[0].get("qnum"), Some("4"));
        assert_eq!(o[0].get("perms"), Some("600"));
    }
}

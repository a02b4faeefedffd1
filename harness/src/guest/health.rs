//! After each scenario, in the guest: is the kernel still clean (taint flag), and did the
//! scenario leave processes behind? A new taint makes the host reboot the guest for the
//! scenarios that follow; leftovers are killed and named in the scenario's result.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The kernel's taint flags (`/proc/sys/kernel/tainted`), 0 when clean or unreadable.
pub fn taint() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/tainted")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The taint bits set in `now` but not in `before`, as the kernel's letters (see
/// Documentation/admin-guide/tainted-kernels.rst).
pub fn new_taint_letters(before: u64, now: u64) -> String {
    const LETTERS: &[u8] = b"PFSRMBUDAWCIOELKXTN";
    let new = now & !before;
    (0..LETTERS.len())
        .filter(|bit| new & (1 << bit) != 0)
        .map(|bit| LETTERS[bit] as char)
        .collect()
}

/// User processes other than the agent (kernel threads are children of kthreadd, pid 2).
fn user_processes() -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me && *pid != 1 && *pid != 2)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, ppid) = crate::exec::proctree::parse_stat(&stat)?;
            let name = stat.split_once('(')?.1.rsplit_once(')')?.0.to_string();
            (ppid != 2).then_some((pid, name))
        })
        .collect()
}

/// Kills and collects what a scenario left running; returns `name(pid)` of each.
pub fn kill_leftovers() -> Vec<String> {
    let left = user_processes();
    for (pid, _) in &left {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    if !left.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(50));
        crate::exec::context::reap_orphans();
    }
    left.into_iter()
        .map(|(pid, name)| format!("{name}({pid})"))
        .collect()
}

/// Records a new taint in the scenario's result: a pass becomes a fail.
pub fn mark_tainted(result: &mut crate::model::outcome::ScenarioResult, letters: &str) {
    let message = format!("the kernel became tainted ({letters}) while the scenario ran");
    match result.failure.as_mut() {
        Some(f) => f.message = format!("{}; {message}", f.message),
        None => {
            result.failure = Some(crate::model::outcome::Failure {
                step: "scenario".into(),
                message,
                ..Default::default()
            })
        }
    }
    if result.outcome == crate::model::outcome::Outcome::Pass {
        result.outcome = crate::model::outcome::Outcome::Fail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taint_letters() {
        assert_eq!(new_taint_letters(0, 0), "");
        // W (warning, bit 9) and D (died/oops, bit 7) are new; G/P was there before.
        assert_eq!(new_taint_letters(1, 1 | (1 << 9) | (1 << 7)), "DW");
    }
}

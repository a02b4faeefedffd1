//! zdtm's tests as scenarios: one per built test and flavor its `.desc` allows (zdtm.py's
//! `h`, `ns`, `uns`), named `zdtm/static/NAME` (the `h` flavor), `zdtm/static/NAME@ns` and
//! `zdtm/static/NAME@uns` (and `zdtm/transition/...`), tagged `zdtm`, `zdtm-h`/`zdtm-ns`/
//! `zdtm-uns`, `zdtm-static`/`zdtm-transition` and a group, with their `.desc` turned into
//! what the harness runs: criu options, the uid drop zdtm.py does for a non-suid test,
//! `crfail` as an expected failure, `feature` as a `criu check --feature` requirement (and
//! `userns` for `uns`), `deps` copied into the root of the namespaced flavors, `noauto`. A
//! key or value the harness does not support makes the test a skip that names it.

use crate::model::scenario::{
    Backend, Expect, ExpectedOutcome, Mode, PlannedStep, Requires, Scenario, StepKind, Target,
    ZdtmFlavor, ZdtmTest,
};
use crate::zdtm::desc::{self, Desc};
use crtest_vm::zdtm_build::{BuiltTest, ZdtmBuild};

/// zdtm.py's default time for a test to start and to stop.
pub const DEFAULT_WAIT_S: u64 = 30;
/// The uid, gid and groups zdtm.py drops a non-suid test to (its numbers, matched in criu).
pub const UID_DROP: &[(&str, &str)] = &[
    ("ZDTM_UID", "18943"),
    ("ZDTM_GID", "58467"),
    ("ZDTM_GROUPS", "27495 48244"),
];
/// Flags of `.desc` the harness honours or that do not apply to how it runs zdtm
/// (`nouser`: not as root, `samens`: `--join-ns`, both zdtm.py modes it does not have;
/// `nolazy`, `noremotelazy`: skipped in the lazy modes; `reqrst`: skipped in `leave-running`,
/// which has no restore; `excl`:
/// alone on the machine, as a guest runs its scenarios one after the other).
const KNOWN_FLAGS: &[&str] = &[
    "suid",
    "crfail",
    "noauto",
    "excl",
    "reqrst",
    "nouser",
    "samens",
    "nolazy",
    "noremotelazy",
    "crlib",
];

/// The group tag of a test, from its name (zdtm has no groups of its own).
pub fn group(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    let has = |p: &[&str]| p.iter().any(|x| n.contains(x));
    if has(&[
        "sock", "tcp", "udp", "unix", "netlink", "packet", "inet", "net_", "sk-", "ipv6",
    ]) {
        "sockets"
    } else if has(&["pipe", "fifo", "shm", "msgque", "sem", "ipc", "mq"]) {
        "ipc"
    } else if has(&[
        "mnt",
        "mount",
        "bind",
        "overmount",
        "tmpfs",
        "cgroup",
        "ns",
        "pidns",
        "uts",
    ]) {
        "ns-mounts"
    } else if has(&[
        "map", "mem", "mprotect", "madvise", "huge", "thp", "vdso", "brk", "mlock",
    ]) {
        "mm"
    } else if has(&[
        "file",
        "link",
        "fd",
        "dir",
        "lock",
        "fanotify",
        "inotify",
        "epoll",
        "eventfd",
        "signalfd",
        "timerfd",
        "chroot",
        "cwd",
        "ghost",
        "deleted",
        "write_read",
        "fifo",
        "aio",
    ]) {
        "files"
    } else if has(&[
        "sig",
        "ptrace",
        "seccomp",
        "timer",
        "itimer",
        "posix_timers",
        "rlimit",
        "caps",
        "groups",
        "pdeath",
        "sched",
        "prctl",
        "personality",
        "fpu",
        "sse",
        "mmx",
        "xsave",
        "rseq",
    ]) {
        "process"
    } else if has(&["tty", "pty", "vt", "console"]) {
        "tty"
    } else {
        "other"
    }
}

/// The flavors a `.desc` allows, as zdtm.py reads it (all three when it names none).
pub fn flavors(d: &Desc) -> Vec<ZdtmFlavor> {
    match &d.flavor {
        None => ZdtmFlavor::ALL.to_vec(),
        Some(words) => ZdtmFlavor::ALL
            .into_iter()
            .filter(|f| words.iter().any(|w| w == f.as_str()))
            .collect(),
    }
}

/// Why a `.desc` makes a test one this harness does not run, if it does.
pub fn unsupported(d: &Desc) -> Option<String> {
    if flavors(d).is_empty() {
        return Some(format!(
            "`.desc` flavor `{}` names none of zdtm's flavors h, ns, uns",
            d.flavor.as_deref().unwrap_or_default().join(" ")
        ));
    }
    if let Some(a) = &d.arch {
        if !a.iter().any(|w| w == "x86_64") {
            return Some(format!(
                "`.desc` arch `{}`: the guest is x86_64",
                a.join(" ")
            ));
        }
    }
    if let Some(k) = d.unknown.first() {
        return Some(format!(
            "`.desc` key `{k}` is not supported by this harness"
        ));
    }
    if let Some(f) = d.flags.iter().find(|f| !KNOWN_FLAGS.contains(&f.as_str())) {
        return Some(format!(
            "`.desc` flag `{f}` is not supported by this harness"
        ));
    }
    None
}

/// A built test's `.desc`, and why it cannot be read when it cannot.
fn desc_of(t: &BuiltTest) -> (Desc, Option<String>) {
    match t
        .desc
        .as_deref()
        .map(desc::parse)
        .unwrap_or(Ok(Desc::default()))
    {
        Ok(d) => (d, None),
        Err(e) => (
            Desc::default(),
            Some(format!("its `.desc` cannot be read: {e}")),
        ),
    }
}

/// The scenario name of a test in a flavor: `zdtm/static/NAME`, `zdtm/static/NAME@ns`.
pub fn scenario_name(test: &str, flavor: ZdtmFlavor) -> String {
    match flavor {
        ZdtmFlavor::H => format!("zdtm/{test}"),
        f => format!("zdtm/{test}@{}", f.as_str()),
    }
}

/// The scenario of one built test in zdtm's `h` flavor.
pub fn scenario(build: &ZdtmBuild, t: &BuiltTest) -> Scenario {
    scenario_in(build, t, ZdtmFlavor::H)
}

/// The scenario of one built test in `flavor`.
pub fn scenario_in(build: &ZdtmBuild, t: &BuiltTest, flavor: ZdtmFlavor) -> Scenario {
    let (d, bad_desc) = desc_of(t);
    let unsupported = bad_desc.or_else(|| unsupported(&d)).or_else(|| {
        t.command.is_empty().then(|| {
            "the Makefile has no `NAME.pid` rule: zdtm.py cannot start it either".to_string()
        })
    });
    let mut env: Vec<(String, String)> = vec![("ZDTM_THREAD_BOMB".into(), "5".into())];
    if !d.has_flag("suid") {
        env.extend(UID_DROP.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    let wait_s = d.timeout_s.unwrap_or(DEFAULT_WAIT_S);
    let name_only = t.name.rsplit('/').next().unwrap_or(&t.name);
    let set = t.name.split('/').next().unwrap_or("static");
    let mut opts = d.opts.clone();
    if d.has_flag("crlib") {
        opts.extend([
            "--libdir".to_string(),
            format!("{}/zdtm/{set}/lib", crate::model::scenario::ZDTM_ROOT),
        ]);
    }
    let dump_args = opts.iter().chain(&d.dopts).cloned().collect();
    let restore_args = opts.iter().chain(&d.ropts).cloned().collect();
    let mut tags = vec![
        "zdtm".to_string(),
        format!("zdtm-{}", flavor.as_str()),
        format!("zdtm-{set}"),
        group(name_only).to_string(),
    ];
    if d.has_flag("noauto") {
        tags.push("noauto".into());
    }
    let expect = if d.has_flag("crfail") {
        Expect {
            outcome: ExpectedOutcome::Fail,
            reason: Some("`crfail` in its .desc: zdtm expects C/R of this test to fail".into()),
            ..Expect::default()
        }
    } else {
        Expect::default()
    };
    let steps = [
        StepKind::Start,
        StepKind::WaitReady,
        StepKind::Checkpoint,
        StepKind::Restore,
        StepKind::Verify,
    ]
    .into_iter()
    .map(|kind| PlannedStep { kind, iteration: 1 })
    .collect();
    let mut flags = d.flags.clone();
    flags.sort();
    let mut criu_features = d.feature.clone();
    if flavor == ZdtmFlavor::Uns {
        // zdtm.py runs `uns` only where `criu check --feature userns` passes.
        criu_features.push("userns".into());
    }
    Scenario {
        name: scenario_name(&t.name, flavor),
        description: format!(
            "zdtm {set} test {name_only} ({} flavor) of criu {} ({}){}",
            flavor.as_str(),
            build.version,
            build.source,
            if flags.is_empty() {
                String::new()
            } else {
                format!(", flags {}", flags.join(" "))
            }
        ),
        target: Target::Zdtm(ZdtmTest {
            test: t.name.clone(),
            command: t.command.clone(),
            env,
            checkskip: t.checkskip,
            hook: t.hook,
            wait_s,
            unsupported,
            via_zdtm_py: false,
            flavor,
            deps: d.deps.clone(),
            flags: flags.clone(),
        }),
        steps,
        iterations: 1,
        mode: Mode::PLAIN,
        timeout_s: 3 * wait_s + 90,
        step_timeout_s: wait_s + 60,
        tags,
        dump_args,
        restore_args,
        requires: Requires {
            criu_features,
            ..Requires::default()
        },
        expect,
        backend: Backend::Criu,
        lxc: None,
        oci: None,
        vnc: None,
        before: vec![],
        after: vec![],
        between: vec![],
        fresh_kernel: false,
        userland_variant: Some("zdtm".into()),
        source: build.tree.join("test/zdtm").join(&t.name),
    }
}

/// The same test run by the tree's zdtm.py, in a userland with its python (for comparing
/// verdicts): one `run` step, zdtm.py judges, no expectation of ours.
pub fn via_zdtm_py(mut sc: Scenario) -> Scenario {
    if let Target::Zdtm(z) = &mut sc.target {
        z.via_zdtm_py = true;
    }
    sc.steps = vec![PlannedStep {
        kind: StepKind::Run,
        iteration: 1,
    }];
    sc.expect = Expect::default();
    sc.tags.push("zdtm-py".into());
    sc.timeout_s += 120;
    sc.step_timeout_s = sc.timeout_s;
    sc
}

/// A test of the Makefile's lists that did not build, as a scenario that is a skip naming
/// the build's first error about it.
fn not_built(build: &ZdtmBuild, name: &str) -> Scenario {
    let t = BuiltTest {
        name: name.to_string(),
        command: vec![],
        desc: None,
        checkskip: false,
        hook: false,
    };
    let mut sc = scenario(build, &t);
    if let Target::Zdtm(z) = &mut sc.target {
        z.unsupported = Some(match build.build_errors.get(name) {
            Some(e) => format!("did not build for {}: {e}", build.suite),
            None => format!("did not build for {}", build.suite),
        });
    }
    sc
}

/// A test in each of `chosen` its `.desc` allows; when it allows none of them, one skip
/// that says so (under the name of its first flavor).
fn in_flavors(build: &ZdtmBuild, t: &BuiltTest, chosen: &[ZdtmFlavor]) -> Vec<Scenario> {
    let (d, bad) = desc_of(t);
    let allowed = flavors(&d);
    let run: Vec<ZdtmFlavor> = allowed
        .iter()
        .copied()
        .filter(|f| chosen.contains(f))
        .collect();
    if bad.is_some() || allowed.is_empty() {
        return vec![scenario(build, t)];
    }
    if run.is_empty() {
        let mut sc = scenario_in(build, t, allowed[0]);
        if let Target::Zdtm(z) = &mut sc.target {
            z.unsupported.get_or_insert(format!(
                "`.desc` flavor `{}`, and the run chose {}",
                allowed
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                chosen
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        return vec![sc];
    }
    run.into_iter().map(|f| scenario_in(build, t, f)).collect()
}

/// Every test in every flavor of `chosen` its `.desc` allows (those that did not build as
/// skips), sorted by name; run by zdtm.py when `zdtm_py`.
pub fn scenarios(build: &ZdtmBuild, zdtm_py: bool, chosen: &[ZdtmFlavor]) -> Vec<Scenario> {
    let mut v: Vec<Scenario> = build
        .tests
        .iter()
        .flat_map(|t| in_flavors(build, t, chosen))
        .chain(build.not_built.iter().map(|n| not_built(build, n)))
        .map(|s| if zdtm_py { via_zdtm_py(s) } else { s })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// What a cell's report says of its zdtm tests: where they came from, the tests that did not
/// build, and a version that is not the cell's criu's (a choice, said so).
pub fn notes(build: &ZdtmBuild, criu: Option<&str>) -> Vec<String> {
    let mut notes = vec![format!(
        "zdtm tests of criu {} from {} ({}), built for {}: {} tests",
        build.version,
        build.tree.display(),
        build.source,
        build.suite,
        build.tests.len()
    )];
    if !build.not_built.is_empty() {
        notes.push(format!(
            "zdtm tests that did not build for {}: {}",
            build.suite,
            build.not_built.join(", ")
        ));
    }
    let same = criu.is_some_and(|c| {
        crate::diagnose::version::numeric(c) == crate::diagnose::version::numeric(&build.version)
    });
    if !same {
        notes.push(format!(
            "zdtm of criu {} runs against criu {}: the tests are of another version than the \
             criu they check",
            build.version,
            criu.unwrap_or("?")
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(tests: Vec<BuiltTest>) -> ZdtmBuild {
        ZdtmBuild {
            format: "zdtm-build-v1".into(),
            suite: "bookworm".into(),
            version: "3.17.1".into(),
            source: "git:abc".into(),
            tree: "/src/criu".into(),
            tests,
            not_built: vec![],
            build_errors: Default::default(),
            runtime_packages: vec![],
            build_seconds: 1.0,
            dir: "/c/zdtm".into(),
        }
    }

    fn test(name: &str, desc: Option<&str>) -> BuiltTest {
        BuiltTest {
            name: name.into(),
            command: vec![
                format!("./{}", name.rsplit('/').next().unwrap()),
                "--pidfile=x.pid".into(),
            ],
            desc: desc.map(String::from),
            checkskip: false,
            hook: false,
        }
    }

    fn zdtm(sc: &Scenario) -> &ZdtmTest {
        match &sc.target {
            Target::Zdtm(z) => z,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_desc_becomes_options_requirements_and_expectations() {
        let b = build(vec![]);
        let plain = scenario(&b, &test("static/pipe00", None));
        assert_eq!(plain.name, "zdtm/static/pipe00");
        assert_eq!(plain.tags, ["zdtm", "zdtm-h", "zdtm-static", "ipc"]);
        assert!(zdtm(&plain)
            .env
            .iter()
            .any(|(k, v)| k == "ZDTM_UID" && v == "18943"));
        assert_eq!(zdtm(&plain).unsupported, None);

        let suid = scenario(
            &b,
            &test(
                "static/socket-tcp",
                Some("{'opts': '--tcp-established', 'dopts': '--a', 'ropts': '--b', \
                      'flags': 'suid crfail noauto', 'feature': 'tcp_half_closed', 'timeout': '60'}"),
            ),
        );
        let z = zdtm(&suid);
        assert!(!z.env.iter().any(|(k, _)| k == "ZDTM_UID"));
        assert_eq!(suid.dump_args, ["--tcp-established", "--a"]);
        assert_eq!(suid.restore_args, ["--tcp-established", "--b"]);
        assert_eq!(suid.requires.criu_features, ["tcp_half_closed"]);
        assert_eq!(suid.expect.outcome, ExpectedOutcome::Fail);
        assert!(suid.tags.contains(&"noauto".to_string()));
        assert_eq!(z.wait_s, 60);
    }

    #[test]
    fn what_the_harness_does_not_run_is_a_named_skip() {
        let b = build(vec![]);
        for (desc, want) in [
            ("{'flavor': 'vm'}", "names none of zdtm's flavors"),
            ("{'arch': 's390x'}", "arch `s390x`"),
            ("{'class': 'inhfd'}", "key `class`"),
            ("{'flags': 'suid magic'}", "flag `magic`"),
            ("{'flags': 'suid'", "cannot be read"),
        ] {
            let sc = scenario(&b, &test("static/x", Some(desc)));
            let why = zdtm(&sc).unsupported.clone().unwrap_or_default();
            assert!(why.contains(want), "{desc}: {why}");
        }
        let mut no_rule = test("static/conntracks", None);
        no_rule.command.clear();
        let sc = scenario(&b, &no_rule);
        assert!(zdtm(&sc)
            .unsupported
            .as_deref()
            .unwrap()
            .contains("no `NAME.pid` rule"));
        let h = scenario(&b, &test("static/x", Some("{'flavor': 'h ns'}")));
        assert_eq!(zdtm(&h).unsupported, None);
    }

    #[test]
    fn the_partition_skips_what_a_cell_cannot_run_and_passes_the_rest() {
        let b = build(vec![test("static/pipe00", None)]);
        let mut all = scenarios(&b, false, &[ZdtmFlavor::H]);
        all.extend(
            Scenario::parse(
                std::path::Path::new("/s/counter.toml"),
                "description = \"d\"\nworkload = \"counterloop\"\n",
            )
            .unwrap(),
        );
        let facts = crate::zdtm::known::CellFacts::default();
        let why = "zdtm tests run in a guest: not with --host";
        let (run, skipped) = crate::zdtm::partition::partition(all.clone(), &facts, Err(why));
        assert_eq!(run.len(), 1, "only the workload runs");
        assert_eq!(run[0].name, "counter");
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].outcome, crate::model::outcome::Outcome::Skip);
        assert_eq!(skipped[0].detail.as_deref(), Some(why));
        let (run, skipped) = crate::zdtm::partition::partition(all, &facts, Ok(&b));
        assert_eq!((run.len(), skipped.len()), (2, 0));
    }

    #[test]
    fn a_test_runs_in_each_flavor_its_desc_allows_and_the_run_chose() {
        let b = build(vec![
            test("static/any00", None),
            test(
                "static/nsonly00",
                Some("{'flavor': 'ns uns', 'deps': ['/bin/sh']}"),
            ),
            test("static/honly00", Some("{'flavor': 'h'}")),
        ]);
        let names = |v: &[Scenario]| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        let all = scenarios(&b, false, &ZdtmFlavor::ALL);
        assert_eq!(
            names(&all),
            [
                "zdtm/static/any00",
                "zdtm/static/any00@ns",
                "zdtm/static/any00@uns",
                "zdtm/static/honly00",
                "zdtm/static/nsonly00@ns",
                "zdtm/static/nsonly00@uns",
            ]
        );
        let uns = all
            .iter()
            .find(|s| s.name == "zdtm/static/nsonly00@uns")
            .unwrap();
        assert_eq!(zdtm(uns).flavor, ZdtmFlavor::Uns);
        assert_eq!(zdtm(uns).deps, ["/bin/sh"]);
        assert!(uns.tags.contains(&"zdtm-uns".to_string()));
        assert_eq!(uns.requires.criu_features, ["userns"]);
        assert!(all[0].tags.contains(&"zdtm-h".to_string()));
        // Only h chosen: the ns-only test is one skip that says why.
        let h = scenarios(&b, false, &[ZdtmFlavor::H]);
        assert_eq!(
            names(&h),
            [
                "zdtm/static/any00",
                "zdtm/static/honly00",
                "zdtm/static/nsonly00@ns"
            ]
        );
        let why = zdtm(&h[2]).unsupported.clone().unwrap_or_default();
        assert!(
            why.contains("flavor `ns uns`, and the run chose h"),
            "{why}"
        );
        // zdtm.py runs each flavor with -f.
        let py = via_zdtm_py(all[1].clone());
        assert_eq!(zdtm(&py).flavor, ZdtmFlavor::Ns);
    }

    #[test]
    fn a_test_that_did_not_build_is_a_skip_with_its_error() {
        let mut b = build(vec![test("static/pipe00", None)]);
        b.not_built = vec!["static/broken00".into()];
        b.build_errors.insert(
            "static/broken00".into(),
            "static: broken00.c:2:9: error: x".into(),
        );
        let all = scenarios(&b, false, &[ZdtmFlavor::H]);
        assert_eq!(all.len(), 2);
        let why = zdtm(&all[0]).unsupported.clone().unwrap_or_default();
        assert_eq!(all[0].name, "zdtm/static/broken00");
        assert!(
            why.contains("did not build for bookworm: static: broken00.c:2:9"),
            "{why}"
        );
        assert_eq!(zdtm(&all[1]).unsupported, None);
    }

    #[test]
    fn groups_of_names() {
        assert_eq!(group("socket_udp"), "sockets");
        assert_eq!(group("fifo-rowo-pair"), "ipc");
        assert_eq!(group("mntns_open"), "ns-mounts");
        assert_eq!(group("maps00"), "mm");
        assert_eq!(group("file_locks00"), "files");
        assert_eq!(group("ptrace_sig"), "process");
        assert_eq!(group("pty00"), "tty");
        assert_eq!(group("busyloop00"), "other");
    }
}

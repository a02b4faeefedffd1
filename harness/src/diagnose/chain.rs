//! An error shown whole: its message, then each cause once (`mkdir /x: Permission denied`).
//! Error types keep their cause as a source and leave it out of their own message, so that
//! no cause is said twice.

/// `e` and its sources, joined by `: `. A cause the text already says (an error type that
/// still prints its source in its own message) is not said again.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("mkdir {path}")]
    struct Mkdir {
        path: String,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("setting the guest up")]
    struct Setup(#[source] Mkdir);

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct SaysItsSource {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let e = Setup(Mkdir {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(13),
        });
        let inner = SaysItsSource {
            path: "/y".into(),
            source: std::io::Error::from_raw_os_error(2),
        };
        assert_eq!(chain(&inner).matches("No such file").count(), 1);
        assert!(chain(&e).ends_with("Permission denied (os error 13)"));
    }

    #[test]
    fn each_cause_once() {
        let io = std::io::Error::from_raw_os_error(13);
        let e = Setup(Mkdir {
            path: "/x".into(),
            source: io,
        });
        assert_eq!(
            chain(&e),
            "setting the guest up: mkdir /x: Permission denied (os error 13)"
        );
    }
}

//! A zdtm test's `.desc`: a Python dict literal (`{'flavor': 'h', 'flags': 'suid'}`), read
//! without Python by a small bounded parser of the literal subset zdtm uses: dicts, lists,
//! tuples, strings (single or double quotes, escapes, adjacent strings joined), integers,
//! `True`/`False`/`None`, and `#` comments.

/// Largest `.desc` read (zdtm's are under 1 KiB).
pub const MAX_LEN: usize = 64 * 1024;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 16;

/// A parsed literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    None,
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// The words of a string value (`'suid excl'` -> [suid, excl]), or of a list of strings.
    pub fn words(&self) -> Vec<String> {
        match self {
            Value::Str(s) => s.split_whitespace().map(String::from).collect(),
            Value::List(l) => l.iter().flat_map(Value::words).collect(),
            Value::Int(i) => vec![i.to_string()],
            _ => vec![],
        }
    }
}

/// Why a `.desc` could not be read: the byte offset and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {at}: {what}")]
pub struct DescError {
    pub at: usize,
    pub what: String,
}

/// What a `.desc` says, key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desc {
    /// `flavor` words (`h`, `ns`, `uns`); `None` when the key is absent (all three).
    pub flavor: Option<Vec<String>>,
    pub flags: Vec<String>,
    pub feature: Vec<String>,
    pub opts: Vec<String>,
    pub dopts: Vec<String>,
    pub ropts: Vec<String>,
    /// `arch` words; `None` when absent (every architecture).
    pub arch: Option<Vec<String>>,
    pub deps: Vec<String>,
    pub timeout_s: Option<u64>,
    /// Keys this harness does not know, in the order met.
    pub unknown: Vec<String>,
}

impl Desc {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// Parses a `.desc` text (an empty one is the empty dict, as zdtm.py reads it).
pub fn parse(text: &str) -> Result<Desc, DescError> {
    if text.trim().is_empty() {
        return Ok(Desc::default());
    }
    let v = parse_value_text(text)?;
    let Value::Dict(items) = v else {
        return Err(DescError {
            at: 0,
            what: "a .desc is a dict literal `{...}`".into(),
        });
    };
    let mut d = Desc::default();
    for (k, v) in items {
        let Value::Str(key) = k else {
            return Err(DescError {
                at: 0,
                what: format!("a key that is not a string: {k:?}"),
            });
        };
        let words = v.words();
        match key.as_str() {
            "flavor" => d.flavor = Some(words),
            "flags" => d.flags = words,
            "feature" => d.feature = words,
            "opts" => d.opts = words,
            "dopts" => d.dopts = words,
            "ropts" => d.ropts = words,
            "arch" => d.arch = Some(words),
            "deps" => d.deps = words,
            "timeout" => {
                d.timeout_s = Some(
                    words
                        .first()
                        .and_then(|w| w.parse().ok())
                        .ok_or(DescError {
                            at: 0,
                            what: format!("`timeout` is not a number of seconds: {v:?}"),
                        })?,
                )
            }
            _ => d.unknown.push(key),
        }
    }
    Ok(d)
}

/// Parses one literal value from `text` (trailing commas, comments and space allowed).
pub fn parse_value_text(text: &str) -> Result<Value, DescError> {
    if text.len() > MAX_LEN {
        return Err(DescError {
            at: MAX_LEN,
            what: format!("longer than {MAX_LEN} bytes"),
        });
    }
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.space();
    if p.i != p.b.len() {
        return Err(p.err("text after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> DescError {
        DescError {
            at: self.i,
            what: what.to_string(),
        }
    }

    fn space(&mut self) {
        while self.i < self.b.len() {
            match self.b[self.i] {
                b' ' | b'\t' | b'\n' | b'\r' | b'\\' => self.i += 1,
                b'#' => {
                    while self.i < self.b.len() && self.b[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.space();
        self.b.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Value, DescError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        match self.peek() {
            None => Err(self.err("a value was expected, the text ended")),
            Some(b'{') => self.dict(depth),
            Some(b'[') => self.seq(depth, b']'),
            Some(b'(') => self.seq(depth, b')'),
            Some(b'\'') | Some(b'"') => {
                let mut s = self.string()?;
                while matches!(self.peek(), Some(b'\'') | Some(b'"')) {
                    s.push_str(&self.string()?);
                }
                Ok(Value::Str(s))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => self.int(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.b.len() && self.b[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                match &self.b[start..self.i] {
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    b"None" => Ok(Value::None),
                    _ => {
                        self.i = start;
                        Err(self.err("only True, False and None are names a .desc may use"))
                    }
                }
            }
            Some(_) => Err(self.err("not a value")),
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Value, DescError> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Value::Dict(items));
            }
            let k = self.value(depth + 1)?;
            if self.peek() != Some(b':') {
                return Err(self.err("`:` expected after a key"));
            }
            self.i += 1;
            let v = self.value(depth + 1)?;
            items.push((k, v));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(self.err("`,` or `}` expected")),
            }
        }
    }

    fn seq(&mut self, depth: usize, close: u8) -> Result<Value, DescError> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(Value::List(items));
            }
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => return Err(self.err("`,` or the closing bracket expected")),
            }
        }
    }

    fn int(&mut self) -> Result<Value, DescError> {
        let start = self.i;
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Value::Int)
            .ok_or_else(|| self.err("not a number"))
    }

    fn string(&mut self) -> Result<String, DescError> {
        let quote = self.b[self.i];
        let start = self.i;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                self.i = start;
                return Err(self.err("a string is not closed"));
            };
            self.i += 1;
            match c {
                c if c == quote => break,
                b'\n' => {
                    self.i = start;
                    return Err(self.err("a string is not closed on its line"));
                }
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        continue;
                    };
                    self.i += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'\n' => continue,
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("a string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_zdtm_writes() {
        let d = parse("{'flavor': 'h ns', 'flags': 'suid excl reqrst ', 'feature' : 'mnt_id'}")
            .unwrap();
        assert_eq!(d.flavor, Some(vec!["h".into(), "ns".into()]));
        assert_eq!(d.flags, ["suid", "excl", "reqrst"]);
        assert!(d.has_flag("excl") && !d.has_flag("crfail"));
        assert_eq!(d.feature, ["mnt_id"]);
        let d = parse(
            "{   'deps': [   '/bin/sh',\n                '/sbin/ip|/bin/ip'],\n    \
             'flags': 'suid',\n    'flavor': 'ns uns',}\n",
        )
        .unwrap();
        assert_eq!(d.deps, ["/bin/sh", "/sbin/ip|/bin/ip"]);
        let d = parse(
            "{'flavor': 'h',\n'flags': 'suid',\n# a comment, with 'quotes'\n\
             'opts': '--manage-cgroups --cgroup-yard ../yard'\n}",
        )
        .unwrap();
        assert_eq!(d.opts, ["--manage-cgroups", "--cgroup-yard", "../yard"]);
        let d = parse("{'timeout': '60', 'arch': 'x86_64', \"dopts\": '--a' ' --b', 'x': True}")
            .unwrap();
        assert_eq!(d.timeout_s, Some(60));
        assert_eq!(d.arch, Some(vec!["x86_64".into()]));
        assert_eq!(d.dopts, ["--a", "--b"]);
        assert_eq!(d.unknown, ["x"]);
        assert_eq!(parse("").unwrap(), Desc::default());
        assert_eq!(parse("{'timeout': 30}").unwrap().timeout_s, Some(30));
    }

    #[test]
    fn bad_descs_say_where() {
        for (text, want) in [
            ("{'flags': 'suid'", "`,` or `}` expected"),
            ("{'flags' 'suid'}", "`:` expected"),
            ("{'flags': 'suid}", "not closed"),
            ("['a']", "a dict literal"),
            ("{'a': import}", "only True, False and None"),
            ("{'timeout': 'soon'}", "not a number of seconds"),
            ("{'a': 1} x", "text after the value"),
            ("{1: 'a'}", "not a string"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_value_text(&deep)
            .unwrap_err()
            .what
            .contains("too deep"));
        assert!(parse(&"x".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn mutated_descs_never_panic() {
        let seeds = [
            "{'flavor': 'h ns uns', 'opts': '--tcp-established', 'flags': 'nouser samens'}",
            "{   'deps': ['/bin/sh', '/sbin/ip|/bin/ip'],\n 'flags': 'suid',}",
            "{'a': [1, (2, -3), {'b': None}], \"c\": 'x\\'y' 'z'} # end",
        ];
        let alphabet = b"{}[](),:'\"# \n\\ahsTrueNone0-";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut ok, mut bad) = (0, 0);
        for seed in seeds {
            for cut in 0..=seed.len() {
                let _ = parse(seed.get(..cut).unwrap_or(seed));
            }
            for _ in 0..3000 {
                let mut b = seed.as_bytes().to_vec();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() as usize) % b.len();
                    match next() % 3 {
                        0 => b[i] = alphabet[(next() as usize) % alphabet.len()],
                        1 => {
                            b.remove(i);
                        }
                        _ => b.insert(i, alphabet[(next() as usize) % alphabet.len()]),
                    }
                    if b.is_empty() {
                        b.push(b'{');
                    }
                }
                match parse(&String::from_utf8_lossy(&b)) {
                    Ok(_) => ok += 1,
                    Err(_) => bad += 1,
                }
            }
        }
        eprintln!("mutated .desc inputs: {ok} parsed, {bad} refused");
        assert!(ok > 0 && bad > 0);
    }
}

//! A small RFB (VNC) client for an Xvnc in the guest (`-SecurityTypes None`, UNIX socket):
//! handshake, whole-screen Raw screenshots, key and pointer events. Everything the server
//! sends is bounded so a bad server gives an error, never a panic or a huge allocation.

use crate::vnc::frame::Frame;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest desktop name and failure reason read.
const MAX_STRING: u32 = 64 * 1024;
/// Largest screen side accepted.
const MAX_SIDE: u16 = 16384;

/// Why talking to the RFB server failed.
#[derive(Debug, thiserror::Error)]
pub enum RfbError {
    #[error("cannot connect to the RFB server on {}: {source}", path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("{what} on RFB socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: String,
        source: io::Error,
    },
    #[error("timed out after {timeout:?} {what} on RFB socket {}", path.display())]
    Timeout {
        path: PathBuf,
        what: String,
        timeout: Duration,
    },
    #[error("RFB server on {} closed the connection while we were {what}", path.display())]
    Closed { path: PathBuf, what: String },
    #[error("RFB server on {} refused the connection: {reason}", path.display())]
    Refused { path: PathBuf, reason: String },
    #[error("RFB server on {}: {detail}", path.display())]
    Protocol { path: PathBuf, detail: String },
}

/// The socket plus what every error names.
struct Conn {
    stream: UnixStream,
    path: PathBuf,
    timeout: Duration,
}

impl Conn {
    fn io_error(&self, what: &str, source: io::Error) -> RfbError {
        let (path, what) = (self.path.clone(), what.to_string());
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => RfbError::Timeout {
                path,
                what,
                timeout: self.timeout,
            },
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset => RfbError::Closed { path, what },
            _ => RfbError::Io { path, what, source },
        }
    }

    fn protocol(&self, detail: String) -> RfbError {
        RfbError::Protocol {
            path: self.path.clone(),
            detail,
        }
    }

    fn read(&mut self, buf: &mut [u8], what: &str) -> Result<(), RfbError> {
        self.stream
            .read_exact(buf)
            .map_err(|e| self.io_error(what, e))
    }

    fn read_array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], RfbError> {
        let mut buf = [0; N];
        self.read(&mut buf, what)?;
        Ok(buf)
    }

    fn write(&mut self, buf: &[u8], what: &str) -> Result<(), RfbError> {
        self.stream
            .write_all(buf)
            .map_err(|e| self.io_error(what, e))
    }

    /// A u32 length then that many bytes, at most [`MAX_STRING`].
    fn string(&mut self, what: &str) -> Result<String, RfbError> {
        let len = u32::from_be_bytes(self.read_array(what)?);
        if len > MAX_STRING {
            return Err(self.protocol(format!("{what}: {len} bytes, over the {MAX_STRING} limit")));
        }
        let mut buf = vec![0; len as usize];
        self.read(&mut buf, what)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn skip(&mut self, mut len: u64, what: &str) -> Result<(), RfbError> {
        let mut buf = [0; 4096];
        while len > 0 {
            let n = len.min(buf.len() as u64) as usize;
            self.read(&mut buf[..n], what)?;
            len -= n as u64;
        }
        Ok(())
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A connected RFB client.
pub struct RfbClient {
    conn: Conn,
    width: u16,
    height: u16,
    name: String,
    frame: Frame,
}

impl RfbClient {
    /// Connects to the RFB server on the UNIX socket `path` and does the handshake
    /// (RFB 3.3, 3.7 or 3.8, security type None, shared session). Every read and write
    /// gives up after `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<RfbClient, RfbError> {
        let stream = UnixStream::connect(path).map_err(|source| RfbError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let mut conn = Conn {
            stream,
            path: path.to_path_buf(),
            timeout,
        };
        let timeouts = conn
            .stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| conn.stream.set_write_timeout(Some(timeout)));
        timeouts.map_err(|e| conn.io_error("setting the timeout", e))?;

        let minor = version(&mut conn)?;
        security(&mut conn, minor)?;
        conn.write(&[1], "sending ClientInit")?;
        // ServerInit: width, height, pixel format (ours replaces it), then the name.
        let init: [u8; 20] = conn.read_array("reading ServerInit")?;
        let (width, height) = (be16(&init[0..]), be16(&init[2..]));
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            return Err(conn.protocol(format!(
                "ServerInit gives a {width}x{height} screen; \
                 the harness takes 1x1 to {MAX_SIDE}x{MAX_SIDE}"
            )));
        }
        let name = conn.string("reading the desktop name")?;

        // SetPixelFormat: 32 bpp, depth 24, little endian, true colour, max 255, shifts 16 8 0.
        let format = [
            0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
        ];
        conn.write(&format, "sending SetPixelFormat")?;
        // SetEncodings [Raw].
        conn.write(&[2, 0, 0, 1, 0, 0, 0, 0], "sending SetEncodings")?;
        Ok(RfbClient {
            conn,
            width,
            height,
            name,
            frame: Frame::new(width.into(), height.into()),
        })
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn height(&self) -> u16 {
        self.height
    }

    /// The desktop name from ServerInit.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A full, non-incremental screenshot. SetColourMapEntries, Bell and ServerCutText
    /// messages met on the way are skipped.
    pub fn screenshot(&mut self) -> Result<Frame, RfbError> {
        let [w0, w1] = self.width.to_be_bytes();
        let [h0, h1] = self.height.to_be_bytes();
        let request = [3, 0, 0, 0, 0, 0, w0, w1, h0, h1];
        self.conn
            .write(&request, "sending FramebufferUpdateRequest")?;
        loop {
            let [kind] = self.conn.read_array("reading a server message type")?;
            match kind {
                0 => {
                    self.read_update()?;
                    return Ok(self.frame.clone());
                }
                1 => {
                    let what = "reading SetColourMapEntries";
                    let head: [u8; 5] = self.conn.read_array(what)?;
                    self.conn.skip(u64::from(be16(&head[3..])) * 6, what)?;
                }
                2 => {} // Bell
                3 => {
                    let what = "reading ServerCutText";
                    let head: [u8; 7] = self.conn.read_array(what)?;
                    let len = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
                    self.conn.skip(len.into(), what)?;
                }
                other => {
                    return Err(self
                        .conn
                        .protocol(format!("unknown server message type {other}")))
                }
            }
        }
    }

    /// The rest of a FramebufferUpdate, Raw rectangles drawn into `self.frame`.
    fn read_update(&mut self) -> Result<(), RfbError> {
        let head: [u8; 3] = self.conn.read_array("reading FramebufferUpdate")?;
        let count = be16(&head[1..]);
        for i in 1..=count {
            let what = format!("reading rectangle {i} of {count}");
            let r: [u8; 12] = self.conn.read_array(&what)?;
            let (x, y, w, h) = (be16(&r[0..]), be16(&r[2..]), be16(&r[4..]), be16(&r[6..]));
            let encoding = i32::from_be_bytes([r[8], r[9], r[10], r[11]]);
            if encoding != 0 {
                return Err(self.conn.protocol(format!(
                    "rectangle {i} of {count} has encoding {encoding} ({}), \
                     the harness asked for Raw only",
                    encoding_name(encoding)
                )));
            }
            if u32::from(x) + u32::from(w) > self.width.into()
                || u32::from(y) + u32::from(h) > self.height.into()
            {
                return Err(self.conn.protocol(format!(
                    "rectangle {w}x{h} at {x},{y} lies outside the {}x{} screen",
                    self.width, self.height
                )));
            }
            let mut row = vec![0; usize::from(w) * 4];
            for line in y..y + h {
                self.conn.read(&mut row, &what)?;
                let start = (usize::from(line) * usize::from(self.width) + usize::from(x)) * 3;
                let out = &mut self.frame.rgb[start..start + usize::from(w) * 3];
                // Little endian with shifts r16 g8 b0: bytes b, g, r, unused.
                for (o, p) in out.chunks_exact_mut(3).zip(row.chunks_exact(4)) {
                    o.copy_from_slice(&[p[2], p[1], p[0]]);
                }
            }
        }
        Ok(())
    }

    /// A KeyEvent down then up for each keysym.
    pub fn type_keys(&mut self, keysyms: &[u32]) -> Result<(), RfbError> {
        let mut msg = Vec::with_capacity(keysyms.len() * 16);
        for key in keysyms {
            for down in [1, 0] {
                msg.extend_from_slice(&[4, down, 0, 0]);
                msg.extend_from_slice(&key.to_be_bytes());
            }
        }
        self.conn.write(&msg, "sending KeyEvent")
    }

    /// A PointerEvent: the pointer at `x`,`y` with `buttons` (bit 0 left, 1 middle, 2 right)
    /// held.
    pub fn pointer(&mut self, x: u16, y: u16, buttons: u8) -> Result<(), RfbError> {
        let ([x0, x1], [y0, y1]) = (x.to_be_bytes(), y.to_be_bytes());
        self.conn
            .write(&[5, buttons, x0, x1, y0, y1], "sending PointerEvent")
    }
}

impl std::fmt::Debug for RfbClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RfbClient")
            .field("path", &self.conn.path)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// ProtocolVersion: the server's minor version (3, 7 or 8), answered with the same.
fn version(conn: &mut Conn) -> Result<u8, RfbError> {
    let got: [u8; 12] = conn.read_array("reading the ProtocolVersion")?;
    let minor = match &got {
        b"RFB 003.003\n" => 3,
        b"RFB 003.007\n" => 7,
        b"RFB 003.008\n" => 8,
        _ => {
            let text = String::from_utf8_lossy(&got);
            return Err(conn.protocol(format!(
                "server speaks `{}`; the harness speaks RFB 003.003, 003.007 and 003.008",
                text.trim_end_matches('\n').escape_debug()
            )));
        }
    };
    conn.write(&got, "sending the ProtocolVersion")?;
    Ok(minor)
}

/// Security handshake for type None.
fn security(conn: &mut Conn, minor: u8) -> Result<(), RfbError> {
    let refused = |conn: &mut Conn| -> RfbError {
        match conn.string("reading the failure reason") {
            Ok(reason) => RfbError::Refused {
                path: conn.path.clone(),
                reason,
            },
            Err(e) => e,
        }
    };
    let types = if minor == 3 {
        // The server chooses.
        let chosen = u32::from_be_bytes(conn.read_array("reading the security type")?);
        vec![chosen]
    } else {
        let [count] = conn.read_array("reading the security types")?;
        let mut types = vec![0; count.into()];
        conn.read(&mut types, "reading the security types")?;
        types.into_iter().map(u32::from).collect()
    };
    if types.is_empty() || (minor == 3 && types == [0]) {
        return Err(refused(conn));
    }
    if !types.contains(&1) {
        let list: Vec<String> = types
            .iter()
            .map(|&t| format!("{t} ({})", security_name(t)))
            .collect();
        let s = if list.len() > 1 { "s" } else { "" };
        return Err(conn.protocol(format!(
            "security type{s} {} only; the harness needs None (1)",
            list.join(", ")
        )));
    }
    if minor == 3 {
        return Ok(());
    }
    conn.write(&[1], "sending the security type")?;
    if minor == 8 {
        let result = u32::from_be_bytes(conn.read_array("reading the SecurityResult")?);
        if result != 0 {
            return Err(refused(conn));
        }
    }
    Ok(())
}

fn security_name(t: u32) -> &'static str {
    match t {
        0 => "Invalid",
        1 => "None",
        2 => "VNC auth",
        5 => "RA2",
        6 => "RA2ne",
        16 => "Tight",
        18 => "TLS",
        19 => "VeNCrypt",
        _ => "unknown",
    }
}

fn encoding_name(e: i32) -> &'static str {
    match e {
        0 => "Raw",
        1 => "CopyRect",
        2 => "RRE",
        4 => "CoRRE",
        5 => "Hextile",
        6 => "Zlib",
        7 => "Tight",
        8 => "ZlibHex",
        15 => "TRLE",
        16 => "ZRLE",
        -223 => "DesktopSize",
        -224 => "LastRect",
        -239 => "Cursor",
        -308 => "ExtendedDesktopSize",
        _ => "unknown",
    }
}

/// Why a text cannot be typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("unterminated `{{` at offset {at}")]
    Unterminated { at: usize },
    #[error("unknown key name `{{{name}}}` at offset {at}")]
    UnknownName { name: String, at: usize },
    #[error("character {c:?} at offset {at} is not printable ASCII")]
    NotAscii { c: char, at: usize },
}

/// Keysyms for a text: printable ASCII as itself, `\n` as Return, `{{` a literal `{`, and
/// `{Return}`, `{Escape}`, `{Tab}`, `{BackSpace}`, `{Up}`, `{Down}`, `{Left}`, `{Right}`.
pub fn parse_keys(text: &str) -> Result<Vec<u32>, KeysError> {
    let mut keys = Vec::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        let key = match c {
            '\n' => 0xff0d,
            '{' => {
                let rest = &text[at + 1..];
                if rest.starts_with('{') {
                    chars.next();
                    u32::from('{')
                } else {
                    let Some(end) = rest.find('}') else {
                        return Err(KeysError::Unterminated { at });
                    };
                    let name = &rest[..end];
                    chars.nth(name.chars().count()); // past the name and `}`
                    named_key(name).ok_or_else(|| KeysError::UnknownName {
                        name: name.to_string(),
                        at,
                    })?
                }
            }
            ' '..='~' => u32::from(c),
            _ => return Err(KeysError::NotAscii { c, at }),
        };
        keys.push(key);
    }
    Ok(keys)
}

fn named_key(name: &str) -> Option<u32> {
    Some(match name {
        "Return" => 0xff0d,
        "Escape" => 0xff1b,
        "Tab" => 0xff09,
        "BackSpace" => 0xff08,
        "Left" => 0xff51,
        "Up" => 0xff52,
        "Right" => 0xff53,
        "Down" => 0xff54,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::os::unix::net::UnixListener;
    use std::thread::{self, JoinHandle};
    use std::time::Instant;

    #[rstest]
    #[case("ab Z~", vec![0x61, 0x62, 0x20, 0x5a, 0x7e])]
    #[case("ls\n", vec![0x6c, 0x73, 0xff0d])]
    #[case("{Return}{Escape}{Tab}{BackSpace}", vec![0xff0d, 0xff1b, 0xff09, 0xff08])]
    #[case("{Up}{Down}{Left}{Right}", vec![0xff52, 0xff54, 0xff51, 0xff53])]
    #[case("{{x}", vec![0x7b, 0x78, 0x7d])]
    #[case("", vec![])]
    fn parse_keys_ok(#[case] text: &str, #[case] keys: Vec<u32>) {
        assert_eq!(parse_keys(text), Ok(keys));
    }

    #[rstest]
    #[case("ab{Enter}", "unknown key name `{Enter}` at offset 2")]
    #[case("x{Return", "unterminated `{` at offset 1")]
    #[case("{}", "unknown key name `{}` at offset 0")]
    #[case("caf\u{e9}", "character 'é' at offset 3 is not printable ASCII")]
    #[case("a\tb", "character '\\t' at offset 1 is not printable ASCII")]
    fn parse_keys_errors(#[case] text: &str, #[case] message: &str) {
        assert_eq!(parse_keys(text).unwrap_err().to_string(), message);
    }

    /// What the scripted server does, in order.
    #[derive(Clone)]
    enum Step {
        Put(Vec<u8>),
        Get(usize),
        /// Reads until the client closes.
        Drain,
    }
    use Step::{Drain, Get, Put};

    /// Serves `steps` on the first connection to a fresh socket; what the server read.
    fn serve(steps: Vec<Step>) -> (tempfile::TempDir, PathBuf, JoinHandle<io::Result<Vec<u8>>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vnc.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept()?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut got = vec![];
            for step in steps {
                match step {
                    Put(bytes) => s.write_all(&bytes)?,
                    Get(n) => {
                        let start = got.len();
                        got.resize(start + n, 0);
                        s.read_exact(&mut got[start..])?;
                    }
                    Drain => drop(s.read_to_end(&mut got)?),
                }
            }
            Ok(got)
        });
        (dir, path, server)
    }

    /// ServerInit: a 4x3 screen named `test`.
    fn server_init() -> Step {
        let format = [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0];
        Put([&[0, 4, 0, 3][..], &format, &[0, 0, 0, 4], b"test"].concat())
    }

    /// A 3.8 handshake offering None; reads SetPixelFormat, SetEncodings and the
    /// FramebufferUpdateRequest, then sends `update`.
    fn handshake_then(update: &[&[u8]]) -> Vec<Step> {
        let mut steps = vec![
            Put(b"RFB 003.008\n".to_vec()),
            Get(12),
            Put(vec![2, 2, 1]),
            Get(1),
        ];
        steps.extend([Put(vec![0; 4]), Get(1), server_init(), Get(28), Get(10)]);
        steps.push(Put(update.concat()));
        steps
    }

    fn rect(x: u16, y: u16, w: u16, h: u16, encoding: i32) -> Vec<u8> {
        let fields = [x, y, w, h].map(u16::to_be_bytes).concat();
        [fields, encoding.to_be_bytes().to_vec()].concat()
    }

    /// Pixel (x, y) of the test screen, as bytes b, g, r, unused.
    fn raw_pixel(x: u16, y: u16) -> [u8; 4] {
        [x as u8 * 10, y as u8 * 10, 200, 0xee]
    }

    fn raw_rows(y: std::ops::Range<u16>) -> Vec<u8> {
        y.flat_map(|y| (0..4).flat_map(move |x| raw_pixel(x, y)))
            .collect()
    }

    #[test]
    fn screenshot_keys_and_pointer_against_a_scripted_server() {
        let bell = [2];
        let cut_text = [&[3, 0, 0, 0, 0, 0, 0, 5][..], b"hello"].concat();
        let mut steps = handshake_then(&[
            &bell,
            &cut_text,
            &[0, 0, 0, 2],
            &rect(0, 0, 4, 2, 0),
            &raw_rows(0..2),
            &rect(0, 2, 4, 1, 0),
            &raw_rows(2..3),
        ]);
        steps.push(Get(2 * 16 + 6));
        let (_dir, path, server) = serve(steps);
        let mut client = RfbClient::connect(&path, Duration::from_secs(10)).unwrap();
        assert_eq!(
            (client.width(), client.height(), client.name()),
            (4, 3, "test")
        );
        let frame = client.screenshot().unwrap();
        assert_eq!((frame.width, frame.height), (4, 3));
        for (x, y) in [(0, 0), (3, 1), (2, 2), (3, 2)] {
            let [b, g, r, _] = raw_pixel(x, y);
            assert_eq!(frame.pixel(x.into(), y.into()), [r, g, b], "pixel {x},{y}");
        }
        client.type_keys(&[0x61, 0xff0d]).unwrap();
        client.pointer(3, 2, 1).unwrap();

        let got = server.join().unwrap().unwrap();
        let mut want = b"RFB 003.008\n".to_vec();
        want.extend([1, 1]); // security None, shared
        want.extend([
            0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
        ]);
        want.extend([2, 0, 0, 1, 0, 0, 0, 0]);
        want.extend([3, 0, 0, 0, 0, 0, 0, 4, 0, 3]);
        want.extend([4, 1, 0, 0, 0, 0, 0, 0x61, 4, 0, 0, 0, 0, 0, 0, 0x61]);
        want.extend([4, 1, 0, 0, 0, 0, 0xff, 0x0d, 4, 0, 0, 0, 0, 0, 0xff, 0x0d]);
        want.extend([5, 1, 0, 3, 0, 2]);
        assert_eq!(got, want);
    }

    #[test]
    fn rfb_33_server_chooses_none() {
        let steps = vec![
            Put(b"RFB 003.003\n".to_vec()),
            Get(12),
            Put(vec![0, 0, 0, 1]),
            Get(1),
            server_init(),
            Get(28),
        ];
        let (_dir, path, server) = serve(steps);
        let client = RfbClient::connect(&path, Duration::from_secs(10)).unwrap();
        assert_eq!(client.name(), "test");
        let got = server.join().unwrap().unwrap();
        assert_eq!(got[..13], *b"RFB 003.003\n\x01"); // our version, shared; then our format
    }

    /// A 3.8 greeting, then `then`.
    fn v38(then: Vec<Step>) -> Vec<Step> {
        [vec![Put(b"RFB 003.008\n".to_vec()), Get(12)], then].concat()
    }

    /// A 3.8 handshake up to ServerInit, which is `init`.
    fn until_init(init: &[&[u8]]) -> Vec<Step> {
        v38(vec![
            Put(vec![1, 1]),
            Get(1),
            Put(vec![0; 4]),
            Get(1),
            Put(init.concat()),
        ])
    }

    #[rstest]
    #[case::bad_version(
        vec![Put(b"RFB 004.001\n".to_vec())],
        "server speaks `RFB 004.001`; the harness speaks RFB 003.003, 003.007 and 003.008"
    )]
    #[case::vnc_auth_only(
        v38(vec![Put(vec![1, 2])]),
        "security type 2 (VNC auth) only; the harness needs None (1)"
    )]
    #[case::vnc_auth_only_33(
        vec![Put(b"RFB 003.003\n".to_vec()), Get(12), Put(vec![0, 0, 0, 2])],
        "security type 2 (VNC auth) only; the harness needs None (1)"
    )]
    #[case::refused(
        v38(vec![Put(vec![0, 0, 0, 0, 7]), Put(b"go away".to_vec())]),
        "refused the connection: go away"
    )]
    #[case::security_failed(
        v38(vec![Put(vec![1, 1]), Get(1), Put(vec![0, 0, 0, 1, 0, 0, 0, 2, b'n', b'o'])]),
        "refused the connection: no"
    )]
    #[case::huge_screen(
        until_init(&[&[0xff; 4], &[0; 16]]),
        "ServerInit gives a 65535x65535 screen; the harness takes 1x1 to 16384x16384"
    )]
    #[case::huge_name(
        until_init(&[&[0, 4, 0, 3], &[0; 16], &[0xff; 4]]),
        "reading the desktop name: 4294967295 bytes, over the 65536 limit"
    )]
    #[case::outside(
        handshake_then(&[&[0, 0, 0, 1], &rect(3, 0, 2, 2, 0)]),
        "rectangle 2x2 at 3,0 lies outside the 4x3 screen"
    )]
    #[case::tight(
        handshake_then(&[&[0, 0, 0, 2], &rect(0, 0, 4, 1, 0), &raw_rows(0..1),
            &rect(0, 1, 4, 2, 7)]),
        "rectangle 2 of 2 has encoding 7 (Tight), the harness asked for Raw only"
    )]
    #[case::closed_mid_frame(
        handshake_then(&[&[0, 0, 0, 1], &rect(0, 0, 4, 3, 0), &raw_rows(0..1)]),
        "closed the connection while we were reading rectangle 1 of 1"
    )]
    #[case::unknown_message(handshake_then(&[&[9]]), "unknown server message type 9")]
    fn misbehaving_servers(#[case] steps: Vec<Step>, #[case] message: &str) {
        let (_dir, path, server) = serve(steps);
        let result = RfbClient::connect(&path, Duration::from_secs(10))
            .and_then(|mut client| client.screenshot());
        let err = result.unwrap_err();
        assert!(err.to_string().ends_with(message), "{err}");
        assert!(err.to_string().contains("vnc.sock"), "{err}");
        let _ = server.join().unwrap();
    }

    #[test]
    fn silent_server_times_out() {
        let (_dir, path, server) = serve(vec![Drain]);
        let timeout = Duration::from_millis(200);
        let start = Instant::now();
        let err = RfbClient::connect(&path, timeout).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, RfbError::Timeout { .. }), "{err:?}");
        assert!(took >= timeout && took < Duration::from_secs(5), "{took:?}");
        let what = "reading the ProtocolVersion";
        assert!(err.to_string().contains(what), "{err}");
        server.join().unwrap().unwrap();
    }

    #[test]
    fn no_server_is_a_connect_error_naming_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.sock");
        let err = RfbClient::connect(&path, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, RfbError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.sock"), "{err}");
    }
}

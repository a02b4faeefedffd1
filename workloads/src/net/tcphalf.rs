//! `tcphalf`: a half-closed TCP connection on the loopback (criu needs
//! `--tcp-established`).
//!
//! The client writes 3000 bytes and shuts its side down (`shutdown(SHUT_WR)`); the server
//! writes 500 bytes and reads nothing. The client is in `FIN_WAIT2`, the server in
//! `CLOSE_WAIT`, each with the other's bytes waiting. Every tick it checks both states and
//! what waits at each end. On SIGTERM it checks the same, then the server reads the 3000
//! bytes and the end of file, and can still write (the half it kept open), which the
//! client reads after the 500 bytes.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::net::{tcp_state, tcp_state_name};
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Program name.
pub const NAME: &str = "tcphalf";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const TO_SERVER: usize = 3000;
const TO_CLIENT: usize = 500;

struct Half {
    client: TcpStream,
    server: TcpStream,
}

fn wait_state(s: &TcpStream, want: &str) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let st = tcp_state(s.as_raw_fd()).map_err(|e| errno_text(&e))?;
        if tcp_state_name(st) == want {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!(
                "state {} after 5 s, expected {want}",
                tcp_state_name(st)
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn setup() -> Result<Half, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen: {e}"))?;
    let to = l.local_addr().map_err(|e| e.to_string())?;
    let client = TcpStream::connect(to).map_err(|e| format!("connect: {e}"))?;
    let (server, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
    (&client)
        .write_all(&pattern(1, TO_SERVER))
        .map_err(|e| format!("client write: {e}"))?;
    (&server)
        .write_all(&pattern(2, TO_CLIENT))
        .map_err(|e| format!("server write: {e}"))?;
    client
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("client shutdown(SHUT_WR): {e}"))?;
    wait_state(&client, "FIN_WAIT2").map_err(|e| format!("client: {e}"))?;
    wait_state(&server, "CLOSE_WAIT").map_err(|e| format!("server: {e}"))?;
    Ok(Half { client, server })
}

impl Half {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for (end, s, state, waiting) in [
            ("client", &self.client, "FIN_WAIT2", TO_CLIENT),
            ("server", &self.server, "CLOSE_WAIT", TO_SERVER),
        ] {
            match tcp_state(s.as_raw_fd()) {
                Ok(st) => p.expect_eq(&format!("{end}: state"), state, tcp_state_name(st)),
                Err(e) => p.push(format!("{end}: TCP_INFO: {}", errno_text(&e))),
            }
            match sys::queued_bytes(s.as_raw_fd()) {
                Ok(n) => p.expect_eq(&format!("{end}: bytes waiting"), waiting, n),
                Err(e) => p.push(format!("{end}: FIONREAD: {}", errno_text(&e))),
            }
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        for s in [&self.client, &self.server] {
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
        }
        let mut got = Vec::new();
        (&self.server)
            .read_to_end(&mut got)
            .map_err(|e| format!("server: reading to the client's end of file: {e}"))?;
        compare_bytes(
            "server: bytes from the client",
            &pattern(1, TO_SERVER),
            &got,
        )?;
        (&self.server)
            .write_all(b"still open")
            .map_err(|e| format!("server: write on its open half: {e}"))?;
        self.server
            .shutdown(Shutdown::Write)
            .map_err(|e| format!("server: shutdown: {e}"))?;
        let mut back = Vec::new();
        (&self.client)
            .read_to_end(&mut back)
            .map_err(|e| format!("client: reading to the server's end of file: {e}"))?;
        let mut want = pattern(2, TO_CLIENT);
        want.extend_from_slice(b"still open");
        compare_bytes("client: bytes from the server", &want, &back)
    }
}

/// Half-closes the connection, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut half = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    half.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "client={} server={}",
        half.client.as_raw_fd(),
        half.server.as_raw_fd()
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| half.check())?;
    half.check()?;
    half.exercise()?;
    Ok(format!(
        "a half-closed connection stayed in FIN_WAIT2 / CLOSE_WAIT with {TO_SERVER} and {TO_CLIENT} bytes waiting over {ticks} checks; the open half still carried data"
    ))
}

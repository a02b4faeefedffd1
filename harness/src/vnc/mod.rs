//! The VNC side of the desktop scenarios: an RFB client that talks to a server over its
//! UNIX socket, and framebuffer frames (PNG files, pixel diffs). Uses nothing of the crate.

pub mod frame;
pub mod rfb;

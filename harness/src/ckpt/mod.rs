//! The native reader of CRIU image directories behind `crtest ckptinfo`: protobuf wire
//! format, image files, the checkpoint's task tree, and the criu logs beside them.

pub mod dir;
pub mod entries;
pub mod image;
pub mod info;
pub mod logs;
pub mod proto;

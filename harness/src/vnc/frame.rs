//! Framebuffer images: an RGB frame (from [`crate::vnc::rfb`] screenshots or PNG files), PNG
//! reading and writing, and pixel differences between two frames.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

/// The most memory a PNG read may take (a 4096 x 4096 RGBA screen is 64 MiB).
pub const MAX_PNG_BYTES: usize = 64 << 20;

/// An RGB image: 3 bytes per pixel, row-major, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Why a PNG file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: writing PNG: {source}", path.display())]
    Encode {
        path: PathBuf,
        source: png::EncodingError,
    },
    #[error("{}: reading PNG: {source}", path.display())]
    Decode {
        path: PathBuf,
        source: png::DecodingError,
    },
    #[error("{}: {color:?} at {bits} bits; only 8-bit RGB and RGBA are read", path.display())]
    Unsupported {
        path: PathBuf,
        color: png::ColorType,
        bits: u8,
    },
}

/// How two frames differ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diff {
    pub differing: u64,
    pub total: u64,
    /// Bounding box of the differing pixels: x, y, width, height.
    pub bbox: Option<[u32; 4]>,
}

impl Frame {
    /// A black frame.
    pub fn new(width: u32, height: u32) -> Frame {
        Frame {
            width,
            height,
            rgb: vec![0; width as usize * height as usize * 3],
        }
    }

    /// The colour at `(x, y)`. Panics if the point lies outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "pixel {x},{y} outside the frame"
        );
        let o = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[o], self.rgb[o + 1], self.rgb[o + 2]]
    }

    pub fn write_png(&self, path: &Path) -> Result<(), FrameError> {
        let encode = |source| FrameError::Encode {
            path: path.to_path_buf(),
            source,
        };
        let file = File::create(path).map_err(|source| FrameError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(encode)?;
        writer.write_image_data(&self.rgb).map_err(encode)?;
        writer.finish().map_err(encode)
    }

    /// Reads an 8-bit RGB or RGBA PNG (alpha is dropped), decoding at most [`MAX_PNG_BYTES`].
    pub fn read_png(path: &Path) -> Result<Frame, FrameError> {
        let decode = |source| FrameError::Decode {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(|source| FrameError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // A guest's file: its header may claim any size, so decoding is bounded.
        let limits = png::Limits {
            bytes: MAX_PNG_BYTES,
        };
        let mut reader = png::Decoder::new_with_limits(BufReader::new(file), limits)
            .read_info()
            .map_err(decode)?;
        let (color, depth) = reader.output_color_type();
        let channels = match (color, depth) {
            (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
            (png::ColorType::Rgba, png::BitDepth::Eight) => 4,
            _ => {
                return Err(FrameError::Unsupported {
                    path: path.to_path_buf(),
                    color,
                    bits: depth as u8,
                })
            }
        };
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).map_err(decode)?;
        buf.truncate(info.buffer_size());
        let rgb = match channels {
            3 => buf,
            _ => buf
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        };
        Ok(Frame {
            width: info.width,
            height: info.height,
            rgb,
        })
    }

    /// Pixels that differ from the background colour (the most common pixel): tells an
    /// empty screen from one with windows.
    pub fn foreground_pixels(&self) -> u64 {
        let mut counts: HashMap<[u8; 3], u64> = HashMap::new();
        for p in self.rgb.chunks_exact(3) {
            *counts.entry([p[0], p[1], p[2]]).or_default() += 1;
        }
        let total: u64 = counts.values().sum();
        total - counts.values().max().copied().unwrap_or(0)
    }

    fn pixels(&self) -> impl Iterator<Item = &[u8]> {
        self.rgb.chunks_exact(3)
    }
}

/// Pixel difference. Frames of different sizes: every pixel (of the larger) counts as
/// differing and `bbox` is `None`.
pub fn diff(a: &Frame, b: &Frame) -> Diff {
    let area = |f: &Frame| u64::from(f.width) * u64::from(f.height);
    if (a.width, a.height) != (b.width, b.height) {
        let total = area(a).max(area(b));
        return Diff {
            differing: total,
            total,
            bbox: None,
        };
    }
    let mut differing = 0;
    // min x, min y, max x, max y
    let mut bounds: Option<[u32; 4]> = None;
    if a.width > 0 {
        for (i, (pa, pb)) in a.pixels().zip(b.pixels()).enumerate() {
            if pa == pb {
                continue;
            }
            differing += 1;
            let w = a.width as usize;
            let (x, y) = ((i % w) as u32, (i / w) as u32);
            let r = bounds.get_or_insert([x, y, x, y]);
            *r = [r[0].min(x), r[1].min(y), r[2].max(x), r[3].max(y)];
        }
    }
    Diff {
        differing,
        total: area(a),
        bbox: bounds.map(|[x0, y0, x1, y1]| [x0, y0, x1 - x0 + 1, y1 - y0 + 1]),
    }
}

/// An image of the differences for a report: `b` dimmed to a quarter of its brightness,
/// differing pixels pure red. Frames of different sizes give `b`'s size all red.
pub fn diff_image(a: &Frame, b: &Frame) -> Frame {
    const RED: [u8; 3] = [255, 0, 0];
    let mut out = Frame::new(b.width, b.height);
    let same_size = (a.width, a.height) == (b.width, b.height);
    let mut a_pixels = a.pixels();
    for (po, pb) in out.rgb.chunks_exact_mut(3).zip(b.pixels()) {
        let differs = !same_size || a_pixels.next() != Some(pb);
        let px = if differs {
            RED
        } else {
            [pb[0] / 4, pb[1] / 4, pb[2] / 4]
        };
        po.copy_from_slice(&px);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: u32, height: u32, pixels: &[[u8; 3]]) -> Frame {
        Frame {
            width,
            height,
            rgb: pixels.concat(),
        }
    }

    const K: [u8; 3] = [0, 0, 0];
    const W: [u8; 3] = [200, 100, 40];

    #[test]
    fn new_is_black_and_pixel_reads_row_major() {
        assert_eq!(Frame::new(2, 2).rgb, vec![0; 12]);
        let f = frame(2, 2, &[K, K, W, [1, 2, 3]]);
        assert_eq!(f.pixel(0, 1), W);
        assert_eq!(f.pixel(1, 1), [1, 2, 3]);
    }

    #[test]
    fn png_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shot.png");
        let f = frame(3, 2, &[K, W, [1, 2, 3], [255, 255, 255], K, [9, 8, 7]]);
        f.write_png(&path).unwrap();
        assert_eq!(Frame::read_png(&path).unwrap(), f);
    }

    #[test]
    fn rgba_png_drops_alpha() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rgba.png");
        let mut enc = png::Encoder::new(File::create(&path).unwrap(), 2, 1);
        enc.set_color(png::ColorType::Rgba);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        w.finish().unwrap();
        assert_eq!(
            Frame::read_png(&path).unwrap(),
            frame(2, 1, &[[1, 2, 3], [5, 6, 7]])
        );
    }

    #[test]
    fn grayscale_png_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grey.png");
        let mut enc = png::Encoder::new(File::create(&path).unwrap(), 1, 1);
        enc.set_color(png::ColorType::Grayscale);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[7]).unwrap();
        w.finish().unwrap();
        let err = Frame::read_png(&path).unwrap_err();
        assert!(matches!(err, FrameError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("grey.png"), "{err}");
    }

    #[test]
    fn missing_and_corrupt_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.png");
        let err = Frame::read_png(&missing).unwrap_err();
        assert!(matches!(err, FrameError::Io { .. }) && err.to_string().contains("missing.png"));
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"not a png").unwrap();
        let err = Frame::read_png(&junk).unwrap_err();
        assert!(matches!(err, FrameError::Decode { .. }) && err.to_string().contains("junk.png"));
        // Every truncation of a real PNG, and a header that claims 60000 x 60000 pixels.
        let good = dir.path().join("good.png");
        let original = frame(3, 2, &[K; 6]);
        original.write_png(&good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.png");
        for n in 0..bytes.len() {
            std::fs::write(&cut, &bytes[..n]).unwrap();
            // An error, or (once the pixels are all there, without the end chunk) the image.
            if let Ok(f) = Frame::read_png(&cut) {
                assert_eq!(f.rgb, original.rgb, "truncated at {n}");
            }
        }
        let huge = Frame::new(1, 1);
        huge.write_png(&good).unwrap();
        let mut b = std::fs::read(&good).unwrap();
        // IHDR's width and height (big-endian, after the 8-byte signature and chunk header).
        b[16..20].copy_from_slice(&60000u32.to_be_bytes());
        b[20..24].copy_from_slice(&60000u32.to_be_bytes());
        std::fs::write(&cut, &b).unwrap();
        assert!(Frame::read_png(&cut).is_err(), "a 10 GiB claim is refused");
    }

    #[test]
    fn foreground_counts_pixels_off_the_background() {
        assert_eq!(frame(3, 1, &[K, K, K]).foreground_pixels(), 0);
        assert_eq!(frame(2, 2, &[W, K, W, W]).foreground_pixels(), 1);
        assert_eq!(Frame::new(0, 0).foreground_pixels(), 0);
    }

    #[test]
    fn diff_counts_and_bounds() {
        let a = Frame::new(4, 3);
        assert_eq!(
            diff(&a, &a),
            Diff {
                differing: 0,
                total: 12,
                bbox: None
            }
        );
        let mut b = a.clone();
        for (x, y) in [(1, 0), (3, 1)] {
            let o = (y * 4 + x) * 3;
            b.rgb[o..o + 3].copy_from_slice(&W);
        }
        assert_eq!(
            diff(&a, &b),
            Diff {
                differing: 2,
                total: 12,
                bbox: Some([1, 0, 3, 2])
            }
        );
    }

    #[test]
    fn diff_of_different_sizes_is_all_differing() {
        assert_eq!(
            diff(&Frame::new(2, 2), &Frame::new(3, 2)),
            Diff {
                differing: 6,
                total: 6,
                bbox: None
            }
        );
    }

    #[test]
    fn diff_image_dims_equal_pixels_and_reds_differing_ones() {
        let a = frame(2, 1, &[W, K]);
        let b = frame(2, 1, &[W, [8, 8, 8]]);
        assert_eq!(
            diff_image(&a, &b),
            frame(2, 1, &[[50, 25, 10], [255, 0, 0]])
        );
        let other = Frame::new(1, 1);
        assert_eq!(
            diff_image(&other, &b),
            frame(2, 1, &[[255, 0, 0], [255, 0, 0]])
        );
    }
}

//! `fpu`: the CPU's vector and floating-point state of a running thread.
//!
//! A thread loads a pattern of its own into 15 vector registers (`ymm0`-`ymm14`, all 256
//! bits, when the CPU has AVX2; else `xmm0`-`xmm14`) and a non-default MXCSR (round toward
//! zero, flush to zero, every exception masked), then loops in assembly, never calling
//! anything: each round compares every register and MXCSR with the pattern in memory and
//! counts a round. So the registers live only in the thread's saved FPU/xsave state
//! whenever it is not on a CPU, and at the checkpoint: criu must dump and restore them
//! (`PTRACE_GETREGSET` of the xstate at the dump, the sigreturn frame at the restore).
//!
//! Every tick the main thread checks that the rounds go on and that the loop found no
//! difference; on SIGTERM it stops the loop and checks the same. A difference names the
//! register and both values.

use crate::args::{Args, Opt};
use crate::protocol::Workload;
use crate::steady;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// Program name.
pub const NAME: &str = "fpu";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

/// Registers holding a pattern (the 16th is the loop's scratch).
const REGS: usize = 15;
/// How long the loop may go without a round (a busy machine may not run it for a while).
const STALL: std::time::Duration = std::time::Duration::from_secs(5);
/// MXCSR: all exceptions masked (0x1f80), round toward zero (0x6000), flush to zero (0x8000).
const MXCSR: u32 = 0xff80;

#[repr(C, align(32))]
struct Lanes([u8; 32 * REGS]);

/// What the loop shares with the main thread.
struct Shared {
    rounds: AtomicU64,
    stop: AtomicU8,
}

/// The loop's end: 0 when stopped, `i + 1` for the first register found changed
/// (`REGS + 1`: MXCSR), with every register as it was then.
struct End {
    code: u64,
    regs: Lanes,
    mxcsr: [u32; 2],
}

fn pattern() -> Lanes {
    let mut p = Lanes([0; 32 * REGS]);
    for (i, b) in p.0.iter_mut().enumerate() {
        // Every byte its own: a register moved to another slot or a lane lost shows.
        *b = (i as u8).wrapping_mul(37).wrapping_add(11 + (i / 32) as u8);
    }
    p
}

/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn hold_avx2(p: &Lanes, shared: &Shared, end: &mut End) {
    let code: u64;
    std::arch::asm!(
            "vmovdqu ymm0, [{p} + 0]",
            "vmovdqu ymm1, [{p} + 32]",
            "vmovdqu ymm2, [{p} + 64]",
            "vmovdqu ymm3, [{p} + 96]",
            "vmovdqu ymm4, [{p} + 128]",
            "vmovdqu ymm5, [{p} + 160]",
            "vmovdqu ymm6, [{p} + 192]",
            "vmovdqu ymm7, [{p} + 224]",
            "vmovdqu ymm8, [{p} + 256]",
            "vmovdqu ymm9, [{p} + 288]",
            "vmovdqu ymm10, [{p} + 320]",
            "vmovdqu ymm11, [{p} + 352]",
            "vmovdqu ymm12, [{p} + 384]",
            "vmovdqu ymm13, [{p} + 416]",
            "vmovdqu ymm14, [{p} + 448]",
            "ldmxcsr [{m}]",
            "2:",
            "vpcmpeqq ymm15, ymm0, [{p} + 0]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 1",
            "jne 5f",
            "vpcmpeqq ymm15, ymm1, [{p} + 32]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 2",
            "jne 5f",
            "vpcmpeqq ymm15, ymm2, [{p} + 64]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 3",
            "jne 5f",
            "vpcmpeqq ymm15, ymm3, [{p} + 96]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 4",
            "jne 5f",
            "vpcmpeqq ymm15, ymm4, [{p} + 128]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 5",
            "jne 5f",
            "vpcmpeqq ymm15, ymm5, [{p} + 160]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 6",
            "jne 5f",
            "vpcmpeqq ymm15, ymm6, [{p} + 192]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 7",
            "jne 5f",
            "vpcmpeqq ymm15, ymm7, [{p} + 224]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 8",
            "jne 5f",
            "vpcmpeqq ymm15, ymm8, [{p} + 256]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 9",
            "jne 5f",
            "vpcmpeqq ymm15, ymm9, [{p} + 288]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 10",
            "jne 5f",
            "vpcmpeqq ymm15, ymm10, [{p} + 320]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 11",
            "jne 5f",
            "vpcmpeqq ymm15, ymm11, [{p} + 352]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 12",
            "jne 5f",
            "vpcmpeqq ymm15, ymm12, [{p} + 384]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 13",
            "jne 5f",
            "vpcmpeqq ymm15, ymm13, [{p} + 416]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 14",
            "jne 5f",
            "vpcmpeqq ymm15, ymm14, [{p} + 448]",
            "vpmovmskb eax, ymm15",
            "cmp eax, -1",
            "mov ecx, 15",
            "jne 5f",
            "stmxcsr [{m} + 4]",
            "mov eax, [{m} + 4]",
            "cmp eax, [{m}]",
            "mov ecx, 16",
            "jne 5f",
            "lock inc qword ptr [{c}]",
            "cmp byte ptr [{s}], 0",
            "je 2b",
            "xor ecx, ecx",
            "jmp 6f",
            "5:",
            "vmovdqu [{o} + 0], ymm0",
            "vmovdqu [{o} + 32], ymm1",
            "vmovdqu [{o} + 64], ymm2",
            "vmovdqu [{o} + 96], ymm3",
            "vmovdqu [{o} + 128], ymm4",
            "vmovdqu [{o} + 160], ymm5",
            "vmovdqu [{o} + 192], ymm6",
            "vmovdqu [{o} + 224], ymm7",
            "vmovdqu [{o} + 256], ymm8",
            "vmovdqu [{o} + 288], ymm9",
            "vmovdqu [{o} + 320], ymm10",
            "vmovdqu [{o} + 352], ymm11",
            "vmovdqu [{o} + 384], ymm12",
            "vmovdqu [{o} + 416], ymm13",
            "vmovdqu [{o} + 448], ymm14",
            "6:",
            p = in(reg) p.0.as_ptr(),
            o = in(reg) end.regs.0.as_mut_ptr(),
            m = in(reg) end.mxcsr.as_mut_ptr(),
            c = in(reg) shared.rounds.as_ptr(),
            s = in(reg) shared.stop.as_ptr(),
            out("rcx") code,
            out("rax") _,
            out("ymm0") _,
            out("ymm1") _,
            out("ymm2") _,
            out("ymm3") _,
            out("ymm4") _,
            out("ymm5") _,
            out("ymm6") _,
            out("ymm7") _,
            out("ymm8") _,
            out("ymm9") _,
            out("ymm10") _,
            out("ymm11") _,
            out("ymm12") _,
            out("ymm13") _,
            out("ymm14") _,
            out("ymm15") _,
            options(nostack),
    );
    end.code = code;
}

/// # Safety
/// SSE2 is part of x86-64.
unsafe fn hold_sse2(p: &Lanes, shared: &Shared, end: &mut End) {
    let code: u64;
    std::arch::asm!(
            "movdqu xmm0, [{p} + 0]",
            "movdqu xmm1, [{p} + 32]",
            "movdqu xmm2, [{p} + 64]",
            "movdqu xmm3, [{p} + 96]",
            "movdqu xmm4, [{p} + 128]",
            "movdqu xmm5, [{p} + 160]",
            "movdqu xmm6, [{p} + 192]",
            "movdqu xmm7, [{p} + 224]",
            "movdqu xmm8, [{p} + 256]",
            "movdqu xmm9, [{p} + 288]",
            "movdqu xmm10, [{p} + 320]",
            "movdqu xmm11, [{p} + 352]",
            "movdqu xmm12, [{p} + 384]",
            "movdqu xmm13, [{p} + 416]",
            "movdqu xmm14, [{p} + 448]",
            "ldmxcsr [{m}]",
            "2:",
            "movdqu xmm15, [{p} + 0]",
            "pcmpeqd xmm15, xmm0",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 1",
            "jne 5f",
            "movdqu xmm15, [{p} + 32]",
            "pcmpeqd xmm15, xmm1",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 2",
            "jne 5f",
            "movdqu xmm15, [{p} + 64]",
            "pcmpeqd xmm15, xmm2",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 3",
            "jne 5f",
            "movdqu xmm15, [{p} + 96]",
            "pcmpeqd xmm15, xmm3",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 4",
            "jne 5f",
            "movdqu xmm15, [{p} + 128]",
            "pcmpeqd xmm15, xmm4",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 5",
            "jne 5f",
            "movdqu xmm15, [{p} + 160]",
            "pcmpeqd xmm15, xmm5",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 6",
            "jne 5f",
            "movdqu xmm15, [{p} + 192]",
            "pcmpeqd xmm15, xmm6",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 7",
            "jne 5f",
            "movdqu xmm15, [{p} + 224]",
            "pcmpeqd xmm15, xmm7",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 8",
            "jne 5f",
            "movdqu xmm15, [{p} + 256]",
            "pcmpeqd xmm15, xmm8",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 9",
            "jne 5f",
            "movdqu xmm15, [{p} + 288]",
            "pcmpeqd xmm15, xmm9",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 10",
            "jne 5f",
            "movdqu xmm15, [{p} + 320]",
            "pcmpeqd xmm15, xmm10",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 11",
            "jne 5f",
            "movdqu xmm15, [{p} + 352]",
            "pcmpeqd xmm15, xmm11",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 12",
            "jne 5f",
            "movdqu xmm15, [{p} + 384]",
            "pcmpeqd xmm15, xmm12",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 13",
            "jne 5f",
            "movdqu xmm15, [{p} + 416]",
            "pcmpeqd xmm15, xmm13",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 14",
            "jne 5f",
            "movdqu xmm15, [{p} + 448]",
            "pcmpeqd xmm15, xmm14",
            "pmovmskb eax, xmm15",
            "cmp eax, 0xffff",
            "mov ecx, 15",
            "jne 5f",
            "stmxcsr [{m} + 4]",
            "mov eax, [{m} + 4]",
            "cmp eax, [{m}]",
            "mov ecx, 16",
            "jne 5f",
            "lock inc qword ptr [{c}]",
            "cmp byte ptr [{s}], 0",
            "je 2b",
            "xor ecx, ecx",
            "jmp 6f",
            "5:",
            "movdqu [{o} + 0], xmm0",
            "movdqu [{o} + 32], xmm1",
            "movdqu [{o} + 64], xmm2",
            "movdqu [{o} + 96], xmm3",
            "movdqu [{o} + 128], xmm4",
            "movdqu [{o} + 160], xmm5",
            "movdqu [{o} + 192], xmm6",
            "movdqu [{o} + 224], xmm7",
            "movdqu [{o} + 256], xmm8",
            "movdqu [{o} + 288], xmm9",
            "movdqu [{o} + 320], xmm10",
            "movdqu [{o} + 352], xmm11",
            "movdqu [{o} + 384], xmm12",
            "movdqu [{o} + 416], xmm13",
            "movdqu [{o} + 448], xmm14",
            "6:",
            p = in(reg) p.0.as_ptr(),
            o = in(reg) end.regs.0.as_mut_ptr(),
            m = in(reg) end.mxcsr.as_mut_ptr(),
            c = in(reg) shared.rounds.as_ptr(),
            s = in(reg) shared.stop.as_ptr(),
            out("rcx") code,
            out("rax") _,
            out("xmm0") _,
            out("xmm1") _,
            out("xmm2") _,
            out("xmm3") _,
            out("xmm4") _,
            out("xmm5") _,
            out("xmm6") _,
            out("xmm7") _,
            out("xmm8") _,
            out("xmm9") _,
            out("xmm10") _,
            out("xmm11") _,
            out("xmm12") _,
            out("xmm13") _,
            out("xmm14") _,
            out("xmm15") _,
            options(nostack),
    );
    end.code = code;
}

fn hex(b: &[u8]) -> String {
    b.iter().rev().map(|x| format!("{x:02x}")).collect()
}

/// The difference the loop found, in words.
fn describe(end: &End, want: &Lanes, width: usize, reg: &str) -> String {
    let i = end.code as usize - 1;
    if i == REGS {
        return format!(
            "MXCSR: expected {:#06x}, got {:#06x}",
            end.mxcsr[0], end.mxcsr[1]
        );
    }
    let at = i * 32..i * 32 + width;
    format!(
        "{reg}{i}: expected 0x{}, got 0x{}",
        hex(&want.0[at.clone()]),
        hex(&end.regs.0[at])
    )
}

/// Starts the loop thread, then ticks: the rounds must go on and find nothing changed.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    let (reg, width) = if avx2 { ("ymm", 32) } else { ("xmm", 16) };
    let shared = Arc::new(Shared {
        rounds: AtomicU64::new(0),
        stop: AtomicU8::new(0),
    });
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let s2 = shared.clone();
    let holder = std::thread::Builder::new()
        .name("crt-fpu".into())
        .spawn(move || {
            let _ = tid_tx.send(nix::unistd::gettid().as_raw());
            let mut end = End {
                code: 0,
                regs: Lanes([0; 32 * REGS]),
                mxcsr: [MXCSR, 0],
            };
            let p = pattern();
            // SAFETY: the feature was detected; the loop touches only the buffers given.
            unsafe {
                if avx2 {
                    hold_avx2(&p, &s2, &mut end)
                } else {
                    hold_sse2(&p, &s2, &mut end)
                }
            }
            end
        })
        .unwrap_or_else(|e| wl.setup_failed(&format!("cannot start the loop thread: {e}")));
    let tid = tid_rx
        .recv()
        .unwrap_or_else(|_| wl.setup_failed("the loop thread did not start"));
    while shared.rounds.load(Ordering::SeqCst) == 0 && !holder.is_finished() {
        std::thread::yield_now();
    }
    let detail = format!(
        "holder={tid}: {REGS} {reg} registers ({} bits) and MXCSR {MXCSR:#06x} held in a loop",
        width * 8
    );
    let (mut last, mut moved) = (0, std::time::Instant::now());
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| {
        if holder.is_finished() {
            return Err("the loop found a register changed".into());
        }
        let now = shared.rounds.load(Ordering::SeqCst);
        if now != last {
            (last, moved) = (now, std::time::Instant::now());
        } else if moved.elapsed() > STALL {
            return Err(format!(
                "the loop made no round for {} s (stuck at round {now})",
                STALL.as_secs()
            ));
        }
        Ok(())
    });
    shared.stop.store(1, Ordering::SeqCst);
    let end = holder
        .join()
        .map_err(|_| "the loop thread panicked".to_string())?;
    let want = pattern();
    let found = (end.code != 0).then(|| describe(&end, &want, width, reg));
    match (ticks, found) {
        (_, Some(d)) => Err(format!(
            "{d} (after {} rounds)",
            shared.rounds.load(Ordering::SeqCst)
        )),
        (Err(e), None) => Err(e),
        (Ok(ticks), None) => Ok(format!(
            "{REGS} {reg} registers and MXCSR kept their values over {} rounds and {ticks} checks",
            shared.rounds.load(Ordering::SeqCst)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_differs_per_register_and_byte() {
        let p = pattern();
        assert_ne!(p.0[0..32], p.0[32..64]);
        assert_ne!(p.0[0], p.0[1]);
    }

    #[test]
    fn a_difference_is_named() {
        let want = pattern();
        let mut end = End {
            code: 4,
            regs: pattern(),
            mxcsr: [MXCSR, 0x1f80],
        };
        end.regs.0[3 * 32] ^= 0xff;
        let d = describe(&end, &want, 16, "xmm");
        assert!(d.starts_with("xmm3: expected 0x"), "{d}");
        end.code = REGS as u64 + 1;
        assert_eq!(
            describe(&end, &want, 16, "xmm"),
            "MXCSR: expected 0xff80, got 0x1f80"
        );
    }
}

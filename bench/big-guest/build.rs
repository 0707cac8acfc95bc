//! Generates `FUNCTIONS` distinct functions and a table that reaches all of them, so that
//! none is optimised away and the component holds a lot of code to compile.

use std::fmt::Write;

const FUNCTIONS: usize = 6000;

fn main() {
    let mut src = String::new();
    for i in 0..FUNCTIONS {
        let _ = writeln!(
            src,
            "#[inline(never)] fn f{i}(x: u64) -> u64 {{ let mut y = x ^ {i}; for k in 0..(x % 7) {{ y = y.rotate_left((k as u32) + {r}).wrapping_mul({m}).wrapping_add({i}); if y % 3 == {c} {{ y ^= y >> 7; }} }} match y % 5 {{ 0 => y / 3, 1 => y.wrapping_mul(31), 2 => y ^ 0x{h:x}, 3 => y.wrapping_sub({i}), _ => y.rotate_right(9) }} }}",
            r = i % 13,
            m = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64),
            c = i % 3,
            h = (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)
        );
    }
    let _ = writeln!(src, "pub static TABLE: [fn(u64) -> u64; {FUNCTIONS}] = [");
    for i in 0..FUNCTIONS {
        let _ = write!(src, "f{i},");
    }
    let _ = writeln!(src, "];");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("generated.rs");
    if let Err(e) = std::fs::write(&out, src) {
        panic!("cannot write {}: {e}", out.display());
    }
}

//! Exports `hearth:types/echo@0.1.0`: every `echo-*` function returns its argument
//! unchanged; `greet` says hello, fails on an empty name and traps on `"trap"`.

wit_bindgen::generate!({
    world: "callee"
});

use exports::hearth::types::echo::{Colour, Guest, Perms, Point, Shape};

struct Component;

impl Guest for Component {
    fn echo_bool(v: bool) -> bool {
        v
    }

    #[allow(clippy::too_many_arguments)]
    fn echo_numbers(
        a: u8,
        b: i8,
        c: u16,
        d: i16,
        e: u32,
        f: i32,
        g: u64,
        h: i64,
        i: f32,
        j: f64,
        k: char,
    ) -> (u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, char) {
        (a, b, c, d, e, f, g, h, i, j, k)
    }

    fn echo_string(v: String) -> String {
        v
    }

    fn echo_list(v: Vec<u8>) -> Vec<u8> {
        v
    }

    fn echo_record(v: Point) -> Point {
        v
    }

    fn echo_variant(v: Shape) -> Shape {
        v
    }

    fn echo_enum(v: Colour) -> Colour {
        v
    }

    fn echo_flags(v: Perms) -> Perms {
        v
    }

    fn echo_option(v: Option<String>) -> Option<String> {
        v
    }

    fn echo_result(v: Result<u32, String>) -> Result<u32, String> {
        v
    }

    fn echo_nested(v: Vec<(String, Option<Point>)>) -> Vec<(String, Option<Point>)> {
        v
    }

    fn greet(name: String) -> Result<String, String> {
        match name.as_str() {
            "" => Err("empty name".to_string()),
            "trap" => panic!("types-callee trapping on purpose"),
            _ => Ok(format!("hello, {name}")),
        }
    }
}

export!(Component);

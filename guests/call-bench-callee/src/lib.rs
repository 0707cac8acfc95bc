//! The callee of bench/calls: exports `hearth:bench/calls`. `noop` does nothing and the
//! echoes return their input, so a timed call is almost all linking and instantiation
//! overhead.

wit_bindgen::generate!({
    world: "callee"
});

struct Component;

impl exports::hearth::bench::calls::Guest for Component {
    fn noop() {}

    fn echo(data: Vec<u8>) -> Vec<u8> {
        data
    }

    fn echo_sample(
        s: exports::hearth::bench::calls::Sample,
    ) -> exports::hearth::bench::calls::Sample {
        s
    }
}

export!(Component);

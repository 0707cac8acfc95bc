//! The callee of bench/calls: exports `hearth:bench/calls`. `noop` does nothing and `echo`
//! returns its input, so a timed call is almost all linking and instantiation overhead.

wit_bindgen::generate!({
    world: "callee"
});

struct Component;

impl exports::hearth::bench::calls::Guest for Component {
    fn noop() {}

    fn echo(data: Vec<u8>) -> Vec<u8> {
        data
    }
}

export!(Component);

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viz_proto::fuzzing::rtp(data);
});

//! The cargo-fuzz target's entry point, on random input, in the normal suite.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn user_text(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        viz_client::fuzzing::user_text(&data);
    }

    #[test]
    fn address_like_text(s in "(viz|ws|wss|udp|http|ftp)?(://)?[a-z0-9.:\\[\\]-]{0,30}(/[a-z]{0,5})?(#[a-z2-7-]{0,24})?") {
        viz_client::fuzzing::user_text(s.as_bytes());
    }
}

//! Entry points shared by the cargo-fuzz targets and the property tests.

use std::path::Path;

use crate::address::JoinAddress;
use crate::engine::{InputSpec, OutputSpec};
use crate::store::KnownHosts;

/// Join addresses, `--input`/`--output` specs and known-hosts files, as typed or edited
/// by people. A parsed address prints to a string that parses back to it.
pub fn user_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(a) = JoinAddress::parse(&text) {
        assert_eq!(JoinAddress::parse(&a.to_string()).as_ref(), Ok(&a), "{text:?} -> {a}");
    }
    let _ = InputSpec::parse(&text);
    let _ = OutputSpec::parse(&text);
    let kh = KnownHosts::parse(Path::new("known_hosts"), &text);
    for line in text.lines() {
        if let Some(host) = line.split_whitespace().next() {
            let _ = kh.lookup(host);
        }
    }
}

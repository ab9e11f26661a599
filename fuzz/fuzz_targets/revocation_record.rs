//! The revocation-list line parser (`kind id expires crc32`): never panics,
//! and every line it accepts encodes back to itself.
#![no_main]

use certbound::revocation::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::parse(data) {
        let mut line = Vec::new();
        record.encode(&mut line);
        assert_eq!(line.pop(), Some(b'\n'));
        assert_eq!(Record::parse(&line), Ok(record));
    }
});

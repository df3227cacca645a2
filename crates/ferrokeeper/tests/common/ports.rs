//! Ports for the servers a test starts, chosen below the kernel's ephemeral range
//! (`net.ipv4.ip_local_port_range`). A port that `bind(127.0.0.1:0)` hands out lies inside
//! that range, so any outgoing connection made before the server binds it — by the test's
//! clients or by the servers' peer links — may take it as its local port, and then the server
//! cannot listen there (EADDRINUSE; seen in CI as "server … did not come up"). Below the range
//! only a listener can hold a port, and the bind check here sees one.

use std::sync::Mutex;

/// Ports handed out by this process, never handed out twice (tests run in parallel threads).
static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// The lowest port of the range; the tests' own ports start this far below it at most.
const SPAN: u32 = 20_000;

/// A port on 127.0.0.1 that nothing listens on now and that no outgoing connection takes.
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let first = low.saturating_sub(SPAN).max(1_024);
    let span = low.saturating_sub(first);
    let mut given = GIVEN.lock().unwrap();
    if span < 1_000 {
        // No room below the range: fall back to the kernel's choice.
        return bind_any();
    }
    // Different processes (test binaries run one after another, but a port may still be in
    // TIME_WAIT or held by a server that is shutting down) start at different places.
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(given.len() as u32 * 7_919);
    for i in 0..span {
        let port = (first + (seed.wrapping_add(i)) % span) as u16;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port in {first}..{low}");
}

fn bind_any() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

//! A sandbox stops its emulators when it is dropped, and `shutdown` waits until they have.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use refresh_sandbox::{Emulator, Sandbox, SandboxOptions};

fn address(sandbox: &Sandbox) -> SocketAddr {
    let url = sandbox.base_url(Emulator::SugonAc).unwrap();
    url.trim_start_matches("http://").parse().unwrap()
}

async fn accepts(address: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(address).await.is_ok()
}

#[tokio::test]
async fn shutdown_stops_the_emulators_before_it_returns() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::SugonAc))
        .await
        .unwrap();
    let address = address(&sandbox);
    assert!(accepts(address).await, "a started emulator accepts");
    let started: Vec<Emulator> = sandbox.base_urls().into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        started,
        [Emulator::SugonAc],
        "`only` starts only that emulator"
    );
    sandbox.shutdown().await;
    assert!(!accepts(address).await, "stopped once shutdown returns");
}

#[tokio::test]
async fn dropping_the_sandbox_stops_the_emulators() {
    let sandbox = Sandbox::start(SandboxOptions::only(Emulator::SugonAc))
        .await
        .unwrap();
    let address = address(&sandbox);
    assert!(accepts(address).await, "a started emulator accepts");
    drop(sandbox);
    let deadline = Instant::now() + Duration::from_secs(5);
    while accepts(address).await {
        assert!(
            Instant::now() < deadline,
            "still serving 5 s after the drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

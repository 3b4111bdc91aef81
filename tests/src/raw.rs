//! A one-connection HTTP/1.1 host that answers with raw bytes: for what a well-behaved mock server cannot send
//! (chunked bodies without a length, connections dropped mid-answer, answers that never come).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the host answers the first request on its one connection.
#[derive(Clone, Debug)]
pub enum RawAnswer {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Close without answering.
    Close,
    /// Keep the connection open and never answer (until the test ends).
    Hang,
    /// Wait, then write these bytes and close.
    Delayed(Duration, Vec<u8>),
}

impl RawAnswer {
    /// A complete HTTP/1.1 response with the given status line, headers and body, and a `Content-Length`.
    pub fn http(status: &str, headers: &[(&str, &str)], body: &[u8]) -> RawAnswer {
        let mut bytes =
            format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len()).into_bytes();
        for (name, value) in headers {
            bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"connection: close\r\n\r\n");
        bytes.extend_from_slice(body);
        RawAnswer::Bytes(bytes)
    }

    /// A 200 response whose body is sent in chunks, with no `Content-Length`: `chunks` chunks of `chunk_size`
    /// bytes of `fill`.
    pub fn chunked(fill: u8, chunk_size: usize, chunks: usize) -> RawAnswer {
        let mut bytes = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
        for _ in 0..chunks {
            bytes.extend_from_slice(format!("{chunk_size:x}\r\n").as_bytes());
            bytes.extend(std::iter::repeat_n(fill, chunk_size));
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        RawAnswer::Bytes(bytes)
    }
}

/// Starts the host on a free loopback port and returns its base URL. The host serves one connection.
pub async fn serve_raw(answer: RawAnswer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        // Read the request head (the clients here send small requests in one go).
        let mut request = vec![0u8; 64 * 1024];
        let mut read = 0;
        while !request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut request[read..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
        match answer {
            RawAnswer::Bytes(bytes) => {
                // The client may stop reading early (that is what some tests check): ignore write errors.
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            }
            RawAnswer::Close => drop(stream),
            RawAnswer::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop(stream);
            }
            RawAnswer::Delayed(delay, bytes) => {
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
            }
        }
    });
    format!("http://{address}")
}

//! One keep-alive connection to the server, plain or mutual TLS, and
//! HTTP/1.1 requests over it, one at a time: the client side of
//! `bench-instructions`. Blocking and simple on purpose; only the server's
//! instructions are counted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A connection: plain TCP, or TLS 1.3 with the benchmark's client
/// certificate.
pub(crate) enum Connection {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Connection {
    pub(crate) fn plain(addr: SocketAddr) -> Connection {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        Connection::Plain(tcp)
    }

    /// TLS to `addr`, trusting `keys/ca.crt`, presenting `keys/client.crt`.
    pub(crate) fn tls(addr: SocketAddr, keys: &Path) -> Connection {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(keys.join("ca.crt")).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_file(keys.join("client.crt")).unwrap()],
            PrivateKeyDer::from_pem_file(keys.join("client.key")).unwrap(),
        )
        .unwrap();
        let name = ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        Connection::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
    }

    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Connection::Plain(s) => s,
            Connection::Tls(s) => s.as_mut(),
        }
    }

    /// Sends `request` (a whole HTTP/1.1 request) and reads the answer:
    /// (status, body). Answers must carry `content-length`.
    pub(crate) fn exchange(&mut self, request: &[u8]) -> (u16, Vec<u8>) {
        let s = self.stream();
        s.write_all(request).unwrap();
        s.flush().unwrap();
        let mut head = Vec::with_capacity(512);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut byte).unwrap();
            assert!(n == 1, "the server closed the connection");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let status = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no content-length in {head}"));
        let mut body = vec![0u8; length];
        s.read_exact(&mut body).unwrap();
        (status, body)
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A GET of `path`.
pub(crate) fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n").into_bytes()
}

/// A form POST of `body` to `path`, with `headers` (whole lines, each
/// ending in `\r\n`).
pub(crate) fn post(path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/x-www-form-urlencoded\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

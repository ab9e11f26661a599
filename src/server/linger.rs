//! Lingering close, as nginx does it: when the server ends a connection
//! (after answering a request whose body it did not read, for example a 413),
//! it first sends TLS `close_notify` and a TCP FIN, then reads and discards
//! what the client is still sending, up to a byte and time bound. Closing a
//! socket with unread data makes the kernel send a reset, and a client that
//! writes its whole body before reading would see the reset instead of the
//! answer.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// A transport whose TCP socket can be read raw once the session is closed.
pub trait RawTcp: AsyncRead + AsyncWrite + Unpin {
    /// The TCP socket under the transport.
    fn tcp(&mut self) -> &mut TcpStream;
}

impl RawTcp for TcpStream {
    fn tcp(&mut self) -> &mut TcpStream {
        self
    }
}

impl RawTcp for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&mut self) -> &mut TcpStream {
        self.get_mut().0
    }
}

/// How much a lingering close may read and for how long.
#[derive(Debug, Clone, Copy)]
pub struct LingerLimits {
    /// Bytes read and discarded at most.
    pub bytes: usize,
    /// Time spent at most.
    pub timeout: Duration,
}

/// A transport whose shutdown lingers.
pub struct Lingering<Io> {
    io: Io,
    limits: LingerLimits,
    drain: Option<Drain>,
}

struct Drain {
    left: usize,
    deadline: Pin<Box<Sleep>>,
}

impl<Io: RawTcp> Lingering<Io> {
    /// Wraps `io`.
    pub fn new(io: Io, limits: LingerLimits) -> Self {
        Self {
            io,
            limits,
            drain: None,
        }
    }
}

impl<Io: RawTcp> AsyncRead for Lingering<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<Io: RawTcp> AsyncWrite for Lingering<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// Sends `close_notify` (TLS) and FIN, then discards what the client
    /// still sends until it closes, the byte bound or the deadline.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.drain.is_none() {
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.drain = Some(Drain {
                left: this.limits.bytes,
                deadline: Box::pin(tokio::time::sleep(this.limits.timeout)),
            });
        }
        let Some(drain) = this.drain.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            if drain.left == 0 || drain.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(this.io.tcp()).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    drain.left = drain.left.saturating_sub(buf.filled().len());
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

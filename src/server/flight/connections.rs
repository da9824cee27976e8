//! The Flight SQL endpoint's TCP connections, accepted here rather than by
//! tonic so that the end of a connection is seen: the sessions a client
//! logged in on it end with it, as a MySQL session ends with its connection.
//! TLS is negotiated here too, with the server's one certificate, each
//! handshake in its own task so that a client that stalls in it holds up
//! no one else.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::logins::Logins;
use crate::server::Shared;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections accepted (and through TLS) that tonic has not yet taken.
const ACCEPTED_QUEUE: usize = 64;

enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One client connection.
pub(super) struct Tracked {
    transport: Transport,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    logins: Arc<Logins>,
    shared: Arc<Shared>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.logins.connection_closed(&self.shared, self.peer);
    }
}

/// Accepted connections until the server stops. An accept error, such as
/// running out of file descriptors, is waited out, not passed on: it would
/// stop tonic. A failed TLS handshake drops that connection only.
pub(super) fn incoming(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    logins: Arc<Logins>,
    shared: Arc<Shared>,
) -> impl Stream<Item = Result<Tracked, std::io::Error>> {
    let (accepted, queue) = mpsc::channel::<Tracked>(ACCEPTED_QUEUE);
    let stopping = shared.stopping.clone();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = stopping.cancelled() => return,
                result = listener.accept() => match result {
                    Ok(pair) => pair,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            let (tls, accepted) = (tls.clone(), accepted.clone());
            let (logins, shared) = (Arc::clone(&logins), Arc::clone(&shared));
            tokio::spawn(async move {
                let transport = match tls {
                    None => Transport::Plain(stream),
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(stream)) => Transport::Tls(Box::new(stream)),
                            _ => return,
                        }
                    }
                };
                let tracked = Tracked {
                    transport,
                    peer,
                    local,
                    logins,
                    shared,
                };
                let _ = accepted.send(tracked).await;
            });
        }
    });
    futures::stream::unfold(queue, |mut queue| async move {
        let tracked = queue.recv().await?;
        Some((Ok(tracked), queue))
    })
}

impl Connected for Tracked {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local,
            remote_addr: Some(self.peer),
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.transport {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

//! The Flight SQL endpoint's TCP connections, accepted here rather than by
//! tonic so that the end of a connection is seen: the sessions a client
//! logged in on it end with it, as a MySQL session ends with its connection.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::logins::Logins;
use crate::server::Shared;

/// One client connection.
pub(super) struct Tracked {
    stream: TcpStream,
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

/// Accepted connections, for ever (an accept error, such as running out of
/// file descriptors, is waited out, not passed on: it would stop tonic).
pub(super) fn incoming(
    listener: TcpListener,
    logins: Arc<Logins>,
    shared: Arc<Shared>,
) -> impl Stream<Item = Result<Tracked, std::io::Error>> {
    futures::stream::unfold(listener, move |listener| {
        let (logins, shared) = (Arc::clone(&logins), Arc::clone(&shared));
        async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let local = stream.local_addr().ok();
                        let tracked = Tracked {
                            stream,
                            peer,
                            local,
                            logins,
                            shared,
                        };
                        return Some((Ok(tracked), listener));
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
        }
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
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

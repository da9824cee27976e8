//! Packet framing: a 3-byte length and a sequence number before every
//! payload, payloads of 16 MiB - 1 or more split over several packets. The
//! reader checks the sequence and refuses a payload above the limit
//! (`max_allowed_packet`) from its header, before reading or allocating it;
//! the writer numbers and splits what it is given and sends it on `flush`.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The largest payload one packet carries; a payload of this size continues
/// in the next packet.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("the client closed the connection in the middle of a packet")]
    Truncated,
    #[error("packets out of order: expected sequence number {expected}, got {got}")]
    OutOfOrder { expected: u8, got: u8 },
    #[error("got a packet of {size} bytes or more, bigger than max_allowed_packet ({limit} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("network error")]
    Io(#[source] std::io::Error),
}

/// A byte stream a connection runs over: TCP, or TLS over TCP.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// One connection's packets, both ways.
pub struct Packets {
    io: BufReader<Box<dyn Transport>>,
    out: Vec<u8>,
    /// The sequence number the next packet (read or written) carries.
    pub seq: u8,
}

impl Packets {
    pub fn new(io: Box<dyn Transport>) -> Self {
        Packets {
            io: BufReader::with_capacity(64 * 1024, io),
            out: Vec::with_capacity(64 * 1024),
            seq: 0,
        }
    }

    /// The next payload, or `None` when the client closed the connection
    /// between packets. A payload above `limit` bytes is refused from its
    /// headers: nothing of it is read into memory.
    pub async fn read(&mut self, limit: usize) -> Result<Option<Vec<u8>>, PacketError> {
        let mut payload = Vec::new();
        loop {
            let mut header = [0u8; 4];
            match self.io.read_exact(&mut header[..1]).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && payload.is_empty() => {
                    return Ok(None);
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(PacketError::Truncated);
                }
                Err(e) => return Err(PacketError::Io(e)),
            }
            self.io
                .read_exact(&mut header[1..])
                .await
                .map_err(truncated)?;
            let len = usize::from(header[0])
                | (usize::from(header[1]) << 8)
                | (usize::from(header[2]) << 16);
            if header[3] != self.seq {
                return Err(PacketError::OutOfOrder {
                    expected: self.seq,
                    got: header[3],
                });
            }
            self.seq = self.seq.wrapping_add(1);
            if payload.len() + len > limit {
                return Err(PacketError::TooLarge {
                    size: payload.len() + len,
                    limit,
                });
            }
            // The buffer grows as bytes arrive, not as the header claims.
            let start = payload.len();
            let read = (&mut self.io)
                .take(len as u64)
                .read_to_end(&mut payload)
                .await
                .map_err(PacketError::Io)?;
            if read < len || payload.len() - start < len {
                return Err(PacketError::Truncated);
            }
            if len < MAX_PAYLOAD {
                return Ok(Some(payload));
            }
        }
    }

    /// Wait until the client sends something or closes the connection,
    /// without consuming anything: `true` when it closed.
    pub async fn closed_by_peer(&mut self) -> bool {
        match self.io.fill_buf().await {
            Ok(buffered) => buffered.is_empty(),
            Err(_) => true,
        }
    }

    /// Whether what the client sent next is COM_QUIT (it is closing).
    pub fn quit_is_buffered(&self) -> bool {
        self.io.buffer().starts_with(&[1, 0, 0, 0, 1])
    }

    /// Whether the client has sent bytes not yet read (pipelined commands).
    pub fn has_buffered(&self) -> bool {
        !self.io.buffer().is_empty()
    }

    /// Queue one payload (split over several packets when it is large).
    pub fn write(&mut self, payload: &[u8]) {
        let mut chunks = payload.chunks(MAX_PAYLOAD).peekable();
        let exact_multiple = payload.len().is_multiple_of(MAX_PAYLOAD);
        if payload.is_empty() {
            self.header(0);
            return;
        }
        while let Some(chunk) = chunks.next() {
            self.header(chunk.len());
            self.out.extend_from_slice(chunk);
            if chunks.peek().is_none() && exact_multiple {
                // A payload that fills its last packet ends with an empty one.
                self.header(0);
            }
        }
    }

    fn header(&mut self, len: usize) {
        let len = len as u32;
        self.out
            .extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, self.seq]);
        self.seq = self.seq.wrapping_add(1);
    }

    /// Bytes queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Send what is queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.io.get_mut().write_all(&self.out).await?;
            self.out.clear();
        }
        self.io.get_mut().flush().await
    }

    /// Switch to TLS after the client's SSL request: the TLS handshake runs
    /// on what the client sends next. Clients send their TLS hello without
    /// waiting, so it may already be in the read buffer; it goes first.
    pub async fn start_tls(&mut self, acceptor: &tokio_rustls::TlsAcceptor) -> std::io::Result<()> {
        self.flush().await?;
        let placeholder: Box<dyn Transport> =
            Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink()));
        let plain = std::mem::replace(&mut self.io, BufReader::new(placeholder));
        let early = plain.buffer().to_vec();
        let secured = if early.is_empty() {
            acceptor.accept(plain.into_inner()).await?
        } else {
            let (read, write) = tokio::io::split(plain.into_inner());
            let replayed: Box<dyn Transport> = Box::new(tokio::io::join(
                std::io::Cursor::new(early).chain(read),
                write,
            ));
            acceptor.accept(replayed).await?
        };
        self.io = BufReader::with_capacity(64 * 1024, Box::new(secured));
        Ok(())
    }

    /// Close the write side (after a final error packet).
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.io.get_mut().shutdown().await;
    }
}

fn truncated(e: std::io::Error) -> PacketError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        PacketError::Truncated
    } else {
        PacketError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(bytes: Vec<u8>) -> Packets {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut client = client;
        tokio::spawn(async move {
            client.write_all(&bytes).await.unwrap();
            client.shutdown().await.unwrap();
            // Keep the duplex open until the reader has read everything.
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        Packets::new(Box::new(server))
    }

    #[tokio::test]
    async fn payloads_are_read_and_split_payloads_joined() {
        let mut big = Packets::new(Box::new(tokio::io::duplex(16).0));
        let payload = vec![7u8; MAX_PAYLOAD + 10];
        big.write(&payload);
        big.write(b"next");
        let bytes = std::mem::take(&mut big.out);
        let mut p = packets(bytes);
        assert_eq!(p.read(usize::MAX).await.unwrap().unwrap(), payload);
        assert_eq!(p.read(usize::MAX).await.unwrap().unwrap(), b"next");
        assert!(p.read(usize::MAX).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_out_of_order_and_truncated_packets_are_errors() {
        let mut p = packets(vec![0xFF, 0xFF, 0x0F, 0, 1, 2]);
        assert!(matches!(
            p.read(1000).await,
            Err(PacketError::TooLarge { .. })
        ));
        let mut p = packets(vec![1, 0, 0, 5, b'x']);
        assert!(matches!(
            p.read(1 << 20).await,
            Err(PacketError::OutOfOrder {
                expected: 0,
                got: 5
            })
        ));
        let mut p = packets(vec![10, 0, 0, 0, b'x']);
        assert!(matches!(p.read(1 << 20).await, Err(PacketError::Truncated)));
    }
}

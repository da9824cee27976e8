//! The MySQL protocol endpoint, written here on tokio: the packet framing,
//! the handshake and its two password plugins, COM_QUERY (with several
//! statements), prepared statements with binary rows, and the commands
//! drivers and tools send. Each connection gets one session of the instance.
//! (opensrv-mysql, the crate on the registry, frees memory still in use
//! when packets arrive pipelined, as HAProxy's `mysql-check` sends them.)

mod columns;
mod conn;
mod handshake;
mod packet;
mod params;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Shared;
use conn::Connection;
use packet::Packets;

/// Accept connections until `stopping` fires. Beyond `max_connections`, a
/// client gets error 1040 instead of a greeting.
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.options.max_connections));
    let stopping = shared.stopping.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(_) => {
                // Out of file descriptors and the like: back off a little.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    serve(stream, peer, shared).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(async move {
                    let mut packets = Packets::new(Box::new(stream));
                    packets.write(&conn::error_packet(
                        conn::TOO_MANY_CONNECTIONS,
                        "Too many connections",
                    ));
                    packets.shutdown().await;
                });
            }
        }
    }
}

async fn serve(stream: tokio::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let mut packets = Packets::new(Box::new(stream));
    // The session exists before the login so that the greeting carries its
    // id: clients send `KILL QUERY <that id>` from a second connection.
    let instance = Arc::clone(&shared.instance);
    let host = peer.ip().to_string();
    let opened =
        tokio::task::spawn_blocking(move || instance.session_for("unauthenticated user", &host))
            .await;
    let session = match opened {
        Ok(Ok(session)) => Arc::new(session),
        Ok(Err(error)) => {
            packets.write(&conn::error_packet(error.code(), &error.chain_message()));
            packets.shutdown().await;
            return;
        }
        Err(_) => return,
    };
    // Leaves the server's list however the connection ends (a panic too).
    struct Registered(Arc<Shared>, u64);
    impl Drop for Registered {
        fn drop(&mut self) {
            self.0.connections.lock().remove(&self.1);
        }
    }
    shared.connections.lock().insert(session.id());
    let _registered = Registered(Arc::clone(&shared), session.id());
    Connection::new(Arc::clone(&shared), packets, Arc::clone(&session), peer)
        .run()
        .await;
    session.end().await;
}

#[cfg(test)]
mod fuzz {
    //! The decoders against random and mutated input, for a bounded number
    //! of cases: errors, never panics.
    use super::handshake::Response;
    use super::params::decode_values;
    use super::wire::Decoder;
    use std::collections::HashMap;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn decoders_survive_random_and_mutated_packets() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let valid = super::handshake::tests::response_bytes("app", &[3; 20], Some("db"), "x");
        for case in 0..20_000 {
            let mut bytes = if case % 2 == 0 {
                valid.clone()
            } else {
                let len = (rng.next() % 96) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            };
            if !bytes.is_empty() {
                for _ in 0..(rng.next() % 4) {
                    let at = (rng.next() as usize) % bytes.len();
                    bytes[at] = rng.next() as u8;
                }
            }
            let _ = Response::parse(&bytes);
            let count = (rng.next() % 6) as usize;
            let mut bound = Vec::new();
            let _ = decode_values(
                &mut Decoder::new(&bytes),
                count,
                &mut bound,
                &HashMap::new(),
            );
            let mut d = Decoder::new(&bytes);
            let _ = d.lenenc_bytes("x");
            let _ = d.nul_bytes("y");
        }
    }
}

//! What the group's Raft log carries and how members talk. The consensus
//! itself is openraft's; this file declares its types (entries are
//! [`Request`]s) and the transport between members: openraft's three RPCs
//! (append entries, vote, install snapshot) as Arrow Flight `DoAction` calls
//! on each member's Raft port, their bodies postcard-encoded. Flight over
//! tonic is already how lakewave serves Arrow; reusing its generic action
//! call gives HTTP/2 connections with reconnection and deadlines without a
//! second RPC stack or generated code of our own.

use std::collections::HashMap;
use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::Stream;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status, Streaming};

use crate::cancel::Cancel;
use crate::rowstore::changeset::Changeset;

/// A transaction or statement, as one Raft log entry. `origin` and `token`
/// let the member that proposed it recognise it when it is applied (its
/// session is waiting for it); everyone else just applies it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// A transaction's final row images and deletions.
    Changes { origin: Token, changes: Changeset },
    /// A statement every member runs in log order (DDL, loads), in the
    /// database it was written in.
    Statement {
        origin: Token,
        database: String,
        text: String,
    },
}

/// Who proposed an entry: the member, its process's incarnation (so that a
/// restarted member never mistakes an older proposal for a new one) and a
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    pub member: u64,
    pub incarnation: u64,
    pub sequence: u64,
}

/// Entries answer nothing through Raft: a proposer learns its outcome in
/// its own process when it applies the entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response;

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, BasicNode>;
pub type StorageError = openraft::StorageError<u64>;
pub type Entry = openraft::Entry<TypeConfig>;

const APPEND: &str = "raft.append";
/// Not one of openraft's RPCs: a member asks the primary for the log
/// position a read must have seen (Raft's read index), after the primary
/// confirmed with a majority that it still leads.
const READ_INDEX: &str = "lakewave.read_index";
const VOTE: &str = "raft.vote";
const SNAPSHOT: &str = "raft.snapshot";

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

/// Connections to the other members, one lazily connected channel each.
#[derive(Clone, Default)]
pub struct Network {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Network {
    fn channel(&self, address: &str) -> Result<Channel, Unreachable> {
        let mut channels = self.channels.lock();
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| Unreachable::new(&e))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }
}

impl Network {
    /// The primary's read index, asked of the member at `address`.
    pub async fn read_index(
        &self,
        address: &str,
        timeout: Duration,
    ) -> Result<Option<LogId>, String> {
        let channel = self.channel(address).map_err(|e| e.to_string())?;
        let mut client = FlightServiceClient::new(channel);
        let mut request = GrpcRequest::new(Action {
            r#type: READ_INDEX.to_string(),
            body: Vec::new().into(),
        });
        request.set_timeout(timeout);
        let mut stream = client
            .do_action(request)
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        let first = stream
            .message()
            .await
            .map_err(|s| s.message().to_string())?
            .ok_or_else(|| "the primary answered nothing".to_string())?;
        postcard::from_bytes::<Result<Option<LogId>, String>>(&first.body)
            .map_err(|e| e.to_string())?
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            target,
            address: node.addr.clone(),
            network: self.clone(),
        }
    }
}

/// One other member, as openraft talks to it.
pub struct Peer {
    target: u64,
    address: String,
    network: Network,
}

impl Peer {
    async fn call<Req: Serialize, Resp: for<'de> Deserialize<'de>, E>(
        &self,
        kind: &'static str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Result<Resp, E>, RPCError<u64, BasicNode, E>>
    where
        E: std::error::Error + for<'de> Deserialize<'de>,
    {
        let body = encode(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let channel = self.network.channel(&self.address)?;
        let mut client = FlightServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let mut request = GrpcRequest::new(Action {
            r#type: kind.to_string(),
            body: body.into(),
        });
        request.set_timeout(option.hard_ttl());
        let answer = match client.do_action(request).await {
            Ok(answer) => answer,
            Err(status) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)));
            }
            Err(status) => return Err(RPCError::Network(NetworkError::new(&status))),
        };
        let mut stream = answer.into_inner();
        let first = stream
            .message()
            .await
            .map_err(|s| RPCError::Network(NetworkError::new(&s)))?
            .ok_or_else(|| {
                RPCError::Network(NetworkError::new(&AnyError::error(format!(
                    "member {} answered {kind} with nothing",
                    self.target
                ))))
            })?;
        postcard::from_bytes::<Result<Resp, E>>(&first.body)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .call::<_, _, RaftError<u64>>(APPEND, &rpc, &option)
            .await?
        {
            Ok(response) => Ok(response),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self
            .call::<_, _, RaftError<u64, InstallSnapshotError>>(SNAPSHOT, &rpc, &option)
            .await?
        {
            Ok(response) => Ok(response),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .call::<_, _, RaftError<u64>>(VOTE, &rpc, &option)
            .await?
        {
            Ok(response) => Ok(response),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }
}

/// The receiving side: a Flight service whose only call is `DoAction` with
/// the three Raft actions, handed to this member's Raft.
struct RaftService {
    raft: Raft,
    /// Told of every append from a leader (a replica's lag clock).
    contact: Arc<dyn Fn() + Send + Sync>,
}

type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn unsupported<T>() -> Result<GrpcResponse<T>, Status> {
    Err(Status::unimplemented(
        "this is a lakewave group member's Raft port; only its Raft actions are served",
    ))
}

fn answer<T: Serialize>(value: &T) -> Result<GrpcResponse<Answers<arrow_flight::Result>>, Status> {
    let body = encode(value).map_err(|e| Status::internal(e.to_string()))?;
    let item = arrow_flight::Result { body: body.into() };
    Ok(GrpcResponse::new(Box::pin(futures::stream::once(
        async move { Ok(item) },
    ))))
}

fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Status> {
    postcard::from_bytes(body)
        .map_err(|e| Status::invalid_argument(format!("bad Raft message: {e}")))
}

#[tonic::async_trait]
impl FlightService for RaftService {
    type HandshakeStream = Answers<HandshakeResponse>;
    type ListFlightsStream = Answers<FlightInfo>;
    type DoGetStream = Answers<FlightData>;
    type DoPutStream = Answers<PutResult>;
    type DoActionStream = Answers<arrow_flight::Result>;
    type ListActionsStream = Answers<ActionType>;
    type DoExchangeStream = Answers<FlightData>;

    async fn handshake(
        &self,
        _: GrpcRequest<Streaming<HandshakeRequest>>,
    ) -> Result<GrpcResponse<Self::HandshakeStream>, Status> {
        unsupported()
    }
    async fn list_flights(
        &self,
        _: GrpcRequest<Criteria>,
    ) -> Result<GrpcResponse<Self::ListFlightsStream>, Status> {
        unsupported()
    }
    async fn get_flight_info(
        &self,
        _: GrpcRequest<FlightDescriptor>,
    ) -> Result<GrpcResponse<FlightInfo>, Status> {
        unsupported()
    }
    async fn poll_flight_info(
        &self,
        _: GrpcRequest<FlightDescriptor>,
    ) -> Result<GrpcResponse<PollInfo>, Status> {
        unsupported()
    }
    async fn get_schema(
        &self,
        _: GrpcRequest<FlightDescriptor>,
    ) -> Result<GrpcResponse<SchemaResult>, Status> {
        unsupported()
    }
    async fn do_get(
        &self,
        _: GrpcRequest<Ticket>,
    ) -> Result<GrpcResponse<Self::DoGetStream>, Status> {
        unsupported()
    }
    async fn do_put(
        &self,
        _: GrpcRequest<Streaming<FlightData>>,
    ) -> Result<GrpcResponse<Self::DoPutStream>, Status> {
        unsupported()
    }
    async fn do_exchange(
        &self,
        _: GrpcRequest<Streaming<FlightData>>,
    ) -> Result<GrpcResponse<Self::DoExchangeStream>, Status> {
        unsupported()
    }
    async fn list_actions(
        &self,
        _: GrpcRequest<Empty>,
    ) -> Result<GrpcResponse<Self::ListActionsStream>, Status> {
        unsupported()
    }

    async fn do_action(
        &self,
        request: GrpcRequest<Action>,
    ) -> Result<GrpcResponse<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        match action.r#type.as_str() {
            APPEND => {
                let rpc: AppendEntriesRequest<TypeConfig> = decode(&action.body)?;
                let answered = self.raft.append_entries(rpc).await;
                if answered.is_ok() {
                    (self.contact)();
                }
                answer(&answered)
            }
            VOTE => answer(&self.raft.vote(decode(&action.body)?).await),
            READ_INDEX => {
                let confirmed: Result<Option<LogId>, String> = self
                    .raft
                    .ensure_linearizable()
                    .await
                    .map_err(|e| e.to_string());
                answer(&confirmed)
            }
            SNAPSHOT => answer(&self.raft.install_snapshot(decode(&action.body)?).await),
            other => Err(Status::invalid_argument(format!(
                "unknown Raft action '{other}'"
            ))),
        }
    }
}

/// Serve this member's Raft RPCs on `listener` until `stopping` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    raft: Raft,
    contact: Arc<dyn Fn() + Send + Sync>,
    stopping: Cancel,
) {
    let service = FlightServiceServer::new(RaftService { raft, contact })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let incoming = tokio_stream_listener(listener);
    let served = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, async move { stopping.cancelled().await })
        .await;
    if let Err(error) = served {
        eprintln!("lakewave: the group's Raft endpoint stopped: {error}");
    }
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}

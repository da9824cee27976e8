//! The Arrow Flight SQL endpoint, on arrow-flight's `FlightSqlService` over
//! tonic. A query's rows stay Arrow from the cluster to the client: DoGet
//! streams the result's record batches as Flight data, with no conversion.
//! Statement handles and tickets are self-contained (`handle`), so any
//! instance behind a balancer serves any ticket; logins give bearer tokens
//! that name sessions of this instance (`logins`). Every error is a gRPC
//! status whose message starts with the core's MySQL error number and
//! SQLSTATE (also sent as `x-mysql-errno` and `x-mysql-sqlstate` metadata).
//! Like the MySQL endpoint, it reaches the core only through `instance`.

mod connections;
mod handle;
mod logins;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginTransactionRequest, ActionBeginTransactionResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionEndTransactionRequest, Any, CommandGetCatalogs,
    CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    SqlSupportedTransaction, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt};
use parking_lot::Mutex;
use prost::Message;
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, MySqlCode};
use crate::instance::{CATALOG_NAME, Session, conform};
use crate::server::Shared;
use crate::sql::number_markers;
use handle::{Handle, HandleError, from_ipc, rows_of, to_ipc};
use logins::{Caller, Logins};

/// Logins idle for longer than this end (MySQL's `wait_timeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(28_800);
/// How often idle logins are looked for.
const EXPIRY_TICK: Duration = Duration::from_secs(30);
/// Prepared statements with bound parameters one user may hold (MySQL's
/// `max_prepared_stmt_count`).
const MAX_BOUND_STATEMENTS: usize = 16_382;
/// The size a Flight data message aims at: gRPC clients refuse messages
/// above 4 MiB by default, and fewer, fuller messages cost both ends less.
const MESSAGE_TARGET: usize = 2 << 20;

/// A gRPC status carrying a MySQL error number and SQLSTATE.
pub(super) fn status_with_code(code: tonic::Code, mysql: MySqlCode, message: &str) -> Status {
    let mut status = Status::new(
        code,
        format!("ERROR {} ({}): {message}", mysql.errno, mysql.sqlstate),
    );
    let metadata = status.metadata_mut();
    metadata.insert("x-mysql-errno", MetadataValue::from(mysql.errno));
    if let Ok(state) = MetadataValue::try_from(mysql.sqlstate) {
        metadata.insert("x-mysql-sqlstate", state);
    }
    status
}

/// The status for a core error: its kind picks the gRPC code.
pub(super) fn status_of(error: &Error) -> Status {
    let code = match error.kind() {
        ErrorKind::Interface
        | ErrorKind::Syntax
        | ErrorKind::ColumnNotFound
        | ErrorKind::Programming
        | ErrorKind::Data => tonic::Code::InvalidArgument,
        ErrorKind::TableNotFound => tonic::Code::NotFound,
        ErrorKind::TableExists => tonic::Code::AlreadyExists,
        ErrorKind::Integrity | ErrorKind::Operational => tonic::Code::FailedPrecondition,
        ErrorKind::OutOfMemory => tonic::Code::ResourceExhausted,
        ErrorKind::NotSupported => tonic::Code::Unimplemented,
        ErrorKind::Interrupted => tonic::Code::Cancelled,
        ErrorKind::Internal => tonic::Code::Internal,
    };
    status_with_code(code, error.code(), &error.chain_message())
}

fn handle_status(error: HandleError) -> Status {
    status_with_code(
        tonic::Code::InvalidArgument,
        MySqlCode::new(1243, "HY000"),
        &error.to_string(),
    )
}

fn arrow_status(what: &str, error: impl std::fmt::Display) -> Status {
    Status::internal(format!("{what}: {error}"))
}

/// Parameter IPC bytes bound to a prepared statement, by (user, handle id).
type BoundParameters = HashMap<(String, u64), Vec<u8>>;

type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// The Flight SQL service of one server.
#[derive(Clone)]
pub(super) struct Endpoint {
    shared: Arc<Shared>,
    logins: Arc<Logins>,
    /// Parameters bound to prepared statements, by user and handle id, for
    /// clients that keep the handle they prepared rather than the one
    /// binding returned.
    bound: Arc<Mutex<BoundParameters>>,
    sql_info: Arc<SqlInfoData>,
}

fn sql_info(server_version: &str) -> SqlInfoData {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "lakewave");
    builder.append(SqlInfo::FlightSqlServerVersion, server_version);
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    builder.append(SqlInfo::FlightSqlServerReadOnly, false);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    // BeginTransaction / EndTransaction (no savepoints); BEGIN and COMMIT
    // as statements also work in a logged-in session.
    builder.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::Transaction as i32,
    );
    builder.append(SqlInfo::SqlTransactionsSupported, true);
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "`");
    builder.append(SqlInfo::SqlDdlCatalog, false);
    builder.append(SqlInfo::SqlDdlSchema, true);
    builder.append(SqlInfo::SqlDdlTable, true);
    builder.build().expect("a fixed set of SQL info")
}

/// Serve Flight SQL on `listener` until the server stops.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let endpoint = Endpoint {
        sql_info: Arc::new(sql_info(&shared.options.server_version)),
        shared: Arc::clone(&shared),
        logins: Arc::new(Logins::default()),
        bound: Arc::new(Mutex::new(HashMap::new())),
    };
    let logins = Arc::clone(&endpoint.logins);
    let expiring = {
        let (logins, shared) = (Arc::clone(&logins), Arc::clone(&shared));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXPIRY_TICK).await;
                logins.expire(&shared, IDLE_TIMEOUT);
            }
        })
    };
    let mut builder = tonic::transport::Server::builder();
    let max_message = shared.options.max_allowed_packet;
    let service = FlightServiceServer::new(endpoint)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(usize::MAX);
    let stopping = shared.stopping.clone();
    let incoming = connections::incoming(listener, tls, Arc::clone(&logins), Arc::clone(&shared));
    let served = builder
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, async move { stopping.cancelled().await })
        .await;
    if let Err(error) = served {
        eprintln!("lakewave: the Flight SQL endpoint stopped: {error}");
    }
    expiring.abort();
    logins.end_all(&shared);
}

fn peer_host<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A ticket for a handle.
fn ticket_for(handle: &Handle) -> Ticket {
    let ticket = TicketStatementQuery {
        statement_handle: handle.encode().into(),
    };
    Ticket::new(ticket.as_any().encode_to_vec())
}

/// Stream record batches as Flight data, keeping `guard` (the call's own
/// session) alive until the stream ends.
fn flight_stream<S, G>(schema: SchemaRef, batches: S, guard: G) -> FlightStream
where
    S: Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
    G: Send + 'static,
{
    // The encoder would split by the size of the buffers a batch points
    // into, which for a slice of a loaded chunk is the whole chunk: batches
    // are split here by the bytes they hold instead.
    let batches = batches.flat_map(|batch| {
        let pieces = match batch {
            Ok(batch) => message_sized(batch).into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        };
        futures::stream::iter(pieces)
    });
    let encoded = FlightDataEncoderBuilder::new()
        .with_max_flight_data_size(usize::MAX)
        .with_schema(schema)
        .build(batches)
        .map_err(Status::from)
        .map(move |item| {
            let _ = &guard;
            item
        });
    Box::pin(encoded)
}

/// `batch` in slices of about [`MESSAGE_TARGET`] bytes each (by the bytes
/// its rows hold, not the buffers they point into).
fn message_sized(batch: RecordBatch) -> Vec<RecordBatch> {
    let bytes: usize = batch
        .columns()
        .iter()
        .map(|column| {
            let data = column.to_data();
            data.get_slice_memory_size()
                .unwrap_or_else(|_| column.get_buffer_memory_size())
        })
        .sum();
    let rows = batch.num_rows();
    let pieces = bytes.div_ceil(MESSAGE_TARGET).clamp(1, rows.max(1));
    if pieces == 1 {
        return vec![batch];
    }
    let per_piece = rows.div_ceil(pieces);
    (0..rows)
        .step_by(per_piece)
        .map(|offset| batch.slice(offset, per_piece.min(rows - offset)))
        .collect()
}

/// The parameters a prepared statement expects, in order (`$1`, `$2`, ...;
/// `?` markers are numbered so): each of the type planning inferred, or Null
/// where nothing says (ADBC's convention for "any"). `None` without
/// parameters.
fn parameter_schema(
    markers: usize,
    inferred: &HashMap<String, Option<arrow::datatypes::DataType>>,
) -> Option<Schema> {
    let mut numbers: Vec<usize> = inferred
        .keys()
        .filter_map(|name| name.strip_prefix('$')?.parse().ok())
        .collect();
    numbers.extend(1..=markers);
    let count = numbers.into_iter().max()?;
    let fields = (1..=count).map(|n| {
        let name = format!("${n}");
        let data_type = inferred
            .get(&name)
            .cloned()
            .flatten()
            .unwrap_or(arrow::datatypes::DataType::Null);
        arrow::datatypes::Field::new(name, data_type, true)
    });
    Some(Schema::new(fields.collect::<Vec<_>>()))
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e| arrow_status("the schema cannot be encoded", e))?;
    Ok(message.0)
}

impl Endpoint {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.logins
            .caller(&self.shared, request.metadata(), &peer_host(request))
            .await
    }

    /// The caller, after checking that the transaction the call names (if
    /// any: empty is none) is one of the caller's session.
    async fn caller_in<T>(
        &self,
        request: &Request<T>,
        transaction: &[u8],
    ) -> Result<Caller, Status> {
        let caller = self.caller(request).await?;
        if !transaction.is_empty() {
            self.logins.check_transaction(&caller, transaction)?;
        }
        Ok(caller)
    }

    /// The session a handle runs in: the caller's, or, for a handle of
    /// another database than the caller's current one, a session of its
    /// own in that database.
    async fn session_for(
        &self,
        caller: Caller,
        handle: &Handle,
        host: &str,
    ) -> Result<Caller, Status> {
        if handle.database.is_empty()
            || !handle.transaction.is_empty()
            || caller.session.current_database() == handle.database
        {
            // A transaction's statements run in its session, wherever it is.
            return Ok(caller);
        }
        let detour = Logins::detour(&self.shared, &caller.user, host).await?;
        let statement = format!("USE `{}`", handle.database.replace('`', "``"));
        detour
            .session
            .sql(&statement, &[], &Cancel::new())
            .await
            .map_err(|e| status_of(&e))?;
        Ok(detour)
    }

    /// The one row of parameters a query runs with.
    fn query_params(handle: &Handle) -> Result<Vec<ScalarValue>, Status> {
        let mut rows = handle.parameter_rows().map_err(handle_status)?;
        match rows.len() {
            0 => Ok(Vec::new()),
            1 => Ok(rows.pop().expect("one row")),
            n => Err(status_with_code(
                tonic::Code::InvalidArgument,
                crate::error::codes::WRONG_ARGUMENTS,
                &format!("a query runs with one row of parameters, not {n}"),
            )),
        }
    }

    /// FlightInfo for a statement: a query is planned for its schema and
    /// runs when its ticket is fetched; any other statement runs now, and
    /// its ticket carries its rows.
    async fn statement_info(
        &self,
        caller: Caller,
        mut handle: Handle,
        descriptor: FlightDescriptor,
        host: &str,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.session_for(caller, &handle, host).await?;
        let session = Arc::clone(&caller.session);
        let params = Self::query_params(&handle)?;
        let described = session.describe(&handle.sql).await;
        let (schema, total) = match described {
            Ok(Some(schema)) => (schema, -1),
            Ok(None) | Err(_) => {
                // Not a query (or a query whose error the run reports).
                let cancel = Cancel::new();
                let result = session
                    .sql(&handle.sql, &params, &cancel)
                    .await
                    .map_err(|e| status_of(&e))?;
                let batches = result.collect(&cancel).await.map_err(|e| status_of(&e))?;
                let schema = result.schema();
                let total: usize = batches.iter().map(|b| b.num_rows()).sum();
                handle.rows = Some(
                    to_ipc(&schema, &batches)
                        .map_err(|e| arrow_status("the result cannot be encoded", e))?,
                );
                (schema, total as i64)
            }
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| arrow_status("the schema cannot be encoded", e))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket_for(&handle)))
            .with_descriptor(descriptor)
            .with_total_records(total)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    /// The handle with the parameters bound to it, from the handle itself
    /// or from an earlier DoPut.
    fn with_bound(&self, user: &str, mut handle: Handle) -> Handle {
        if handle.params.is_empty()
            && let Some(params) = self.bound.lock().get(&(user.to_string(), handle.id))
        {
            handle.params = params.clone();
        }
        handle
    }

    /// FlightInfo for a metadata command: its ticket is the command itself.
    fn metadata_info(
        schema: &Schema,
        command: Any,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(command.encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| arrow_status("the schema cannot be encoded", e))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    fn one_batch(schema: SchemaRef, batch: Result<RecordBatch, FlightError>) -> FlightStream {
        flight_stream(schema, futures::stream::once(async { batch }), ())
    }

    /// The parameter batches a DoPut sent.
    async fn parameter_batches(
        &self,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<Vec<RecordBatch>, Status> {
        let limit = self.shared.options.max_allowed_packet;
        let flight = request.into_inner().map_err(FlightError::from);
        let mut batches = FlightRecordBatchStream::new_from_flight_data(flight);
        let mut kept = Vec::new();
        let mut size = 0;
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(Status::from)?;
            size += batch.get_array_memory_size();
            if size > limit {
                return Err(status_with_code(
                    tonic::Code::ResourceExhausted,
                    MySqlCode::new(1153, "08S01"),
                    &format!("the parameters are bigger than max_allowed_packet ({limit} bytes)"),
                ));
            }
            kept.push(batch);
        }
        Ok(kept)
    }

    /// Run an update once per row of parameters (once without any), and
    /// return the rows changed.
    async fn run_update(
        session: &Session,
        sql: &str,
        rows: Vec<Vec<ScalarValue>>,
    ) -> Result<i64, Status> {
        let rows = if rows.is_empty() {
            vec![Vec::new()]
        } else {
            rows
        };
        let mut changed = 0u64;
        for params in rows {
            let result = session
                .sql(sql, &params, &Cancel::new())
                .await
                .map_err(|e| status_of(&e))?;
            changed += result.rows_affected().unwrap_or(0);
        }
        Ok(changed as i64)
    }

    /// Every table of the catalog as (database, name, table type).
    fn listing(&self) -> Vec<(String, String, &'static str)> {
        self.shared.instance.table_listing()
    }
}

#[tonic::async_trait]
impl FlightSqlService for Endpoint {
    type FlightService = Endpoint;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let (user, password) = logins::basic_credentials(request.metadata())?.ok_or_else(|| {
            Status::unauthenticated("the handshake needs basic credentials (user:password)")
        })?;
        let token = self
            .logins
            .log_in(&self.shared, &user, &password, request.remote_addr())
            .await?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let header = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("a token that is not a header value"))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let transaction = query.transaction_id.unwrap_or_default();
        let caller = self.caller_in(&request, &transaction).await?;
        let host = peer_host(&request);
        let handle = Handle::new(query.query, caller.session.current_database())
            .in_transaction(&transaction);
        self.statement_info(caller, handle, request.into_inner(), &host)
            .await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = Handle::decode(&query.prepared_statement_handle).map_err(handle_status)?;
        let caller = self.caller_in(&request, &handle.transaction).await?;
        let host = peer_host(&request);
        let handle = self.with_bound(&caller.user, handle);
        self.statement_info(caller, handle, request.into_inner(), &host)
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let handle = Handle::decode(&ticket.statement_handle).map_err(handle_status)?;
        if let Some(rows) = &handle.rows {
            let (schema, batches) =
                from_ipc(rows).map_err(|e| handle_status(HandleError::Arrow(e)))?;
            let batches = futures::stream::iter(batches.into_iter().map(Ok));
            return Ok(Response::new(flight_stream(schema, batches, ())));
        }
        let caller = self.caller_in(&request, &handle.transaction).await?;
        let host = peer_host(&request);
        let caller = self.session_for(caller, &handle, &host).await?;
        let params = Self::query_params(&handle)?;
        // Dropping the stream (the client went away) drops the execution.
        let cancel = Cancel::new();
        let result = caller
            .session
            .sql(&handle.sql, &params, &cancel)
            .await
            .map_err(|e| status_of(&e))?;
        let stream = result.stream(&cancel).await.map_err(|e| status_of(&e))?;
        let schema = result.schema();
        let declared = Arc::clone(&schema);
        let batches = stream.map(move |batch| match batch {
            Ok(batch) => conform(batch, &declared)
                .map_err(|e| FlightError::Tonic(Box::new(Status::internal(e.to_string())))),
            Err(error) => Err(FlightError::Tonic(Box::new(status_of(&error)))),
        });
        Ok(Response::new(flight_stream(schema, batches, caller)))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        // Tickets of prepared statements are statement tickets; a client
        // may still send the command itself.
        let caller = self.caller(&request).await?;
        let handle = Handle::decode(&query.prepared_statement_handle).map_err(handle_status)?;
        let handle = self.with_bound(&caller.user, handle);
        drop(caller);
        let ticket = TicketStatementQuery {
            statement_handle: handle.encode().into(),
        };
        self.do_get_statement(ticket, request).await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.into_builder().schema();
        Self::metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        builder.append(CATALOG_NAME);
        let schema = builder.schema();
        Ok(Response::new(Self::one_batch(schema, builder.build())))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        Self::metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        for database in self.shared.instance.database_names() {
            builder.append(CATALOG_NAME, database);
        }
        let schema = builder.schema();
        Ok(Response::new(Self::one_batch(schema, builder.build())))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        Self::metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let include_schema = query.include_schema;
        let mut builder = query.into_builder();
        for (database, table, kind) in self.listing() {
            let schema = if include_schema {
                let probe = format!(
                    "SELECT * FROM `{}`.`{}` LIMIT 0",
                    database.replace('`', "``"),
                    table.replace('`', "``")
                );
                match caller.session.describe(&probe).await {
                    Ok(Some(schema)) => schema,
                    // A table whose files cannot be read now is listed
                    // without columns rather than failing the listing.
                    _ => Arc::new(Schema::empty()),
                }
            } else {
                Arc::new(Schema::empty())
            };
            builder
                .append(CATALOG_NAME, &database, &table, kind, &schema)
                .map_err(|e| arrow_status("the table listing", e))?;
        }
        let schema = builder.schema();
        Ok(Response::new(Self::one_batch(schema, builder.build())))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.into_builder().schema();
        Self::metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        for kind in crate::instance::TABLE_TYPES {
            builder.append(kind);
        }
        let schema = builder.schema();
        Ok(Response::new(Self::one_batch(schema, builder.build())))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        Self::metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request).await?;
        let builder = query.into_builder(&self.sql_info);
        let schema = builder.schema();
        Ok(Response::new(Self::one_batch(schema, builder.build())))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let transaction = command.transaction_id.unwrap_or_default();
        let caller = self.caller_in(&request, &transaction).await?;
        Self::run_update(&caller.session, &command.query, Vec::new()).await
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        let mut handle = Handle::decode(&query.prepared_statement_handle).map_err(handle_status)?;
        let batches = self.parameter_batches(request).await?;
        handle.params = match batches.first() {
            Some(first) => to_ipc(&first.schema(), &batches)
                .map_err(|e| arrow_status("the parameters cannot be encoded", e))?,
            None => Vec::new(),
        };
        {
            let mut bound = self.bound.lock();
            let key = (caller.user.clone(), handle.id);
            let held = bound.keys().filter(|(u, _)| *u == caller.user).count();
            if !bound.contains_key(&key) && held >= MAX_BOUND_STATEMENTS {
                return Err(status_with_code(
                    tonic::Code::ResourceExhausted,
                    MySqlCode::new(1461, "42000"),
                    &format!(
                        "Can't create more than max_prepared_stmt_count statements (current value: {MAX_BOUND_STATEMENTS})"
                    ),
                ));
            }
            bound.insert(key, handle.params.clone());
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode().into()),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let handle = Handle::decode(&query.prepared_statement_handle).map_err(handle_status)?;
        let caller = self.caller_in(&request, &handle.transaction).await?;
        let host = peer_host(&request);
        let handle = self.with_bound(&caller.user, handle);
        let batches = self.parameter_batches(request).await?;
        let rows = if batches.iter().any(|b| b.num_rows() > 0) {
            rows_of(&batches).map_err(handle_status)?
        } else {
            handle.parameter_rows().map_err(handle_status)?
        };
        let caller = self.session_for(caller, &handle, &host).await?;
        Self::run_update(&caller.session, &handle.sql, rows).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let transaction = query.transaction_id.unwrap_or_default();
        let caller = self.caller_in(&request, &transaction).await?;
        let (sql, markers) = number_markers(&query.query);
        let handle =
            Handle::new(sql, caller.session.current_database()).in_transaction(&transaction);
        let (columns, parameters) = caller
            .session
            .describe_with_parameters(&handle.sql)
            .await
            .map_err(|e| status_of(&e))?;
        let dataset_schema = match columns {
            Some(schema) => schema_bytes(&schema)?,
            None => Default::default(),
        };
        let parameter_schema = match parameter_schema(markers, &parameters) {
            Some(schema) => schema_bytes(&schema)?,
            None => Default::default(),
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode().into(),
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let caller = self.caller(&request).await?;
        // A handle of another server is simply not ours to forget.
        if let Ok(handle) = Handle::decode(&query.prepared_statement_handle) {
            self.bound.lock().remove(&(caller.user.clone(), handle.id));
        }
        Ok(())
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        let caller = self.caller(&request).await?;
        let id = self.logins.begin(&caller).await?;
        Ok(ActionBeginTransactionResult {
            transaction_id: id.into_bytes().into(),
        })
    }

    async fn do_action_end_transaction(
        &self,
        query: ActionEndTransactionRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        use arrow_flight::sql::EndTransaction;
        let outcome = match EndTransaction::try_from(query.action) {
            Ok(EndTransaction::Commit) => logins::Outcome::Commit,
            Ok(EndTransaction::Rollback) => logins::Outcome::Rollback,
            _ => {
                return Err(status_with_code(
                    tonic::Code::InvalidArgument,
                    crate::error::codes::WRONG_ARGUMENTS,
                    &format!(
                        "EndTransaction needs COMMIT or ROLLBACK (action {})",
                        query.action
                    ),
                ));
            }
        };
        let caller = self.caller(&request).await?;
        self.logins
            .end(&caller, &query.transaction_id, outcome)
            .await
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: usize) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
        ]);
        let ids = Int64Array::from_iter_values(0..rows as i64);
        let text = StringArray::from_iter_values((0..rows).map(|i| format!("row {i:>40}")));
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ids), Arc::new(text)]).unwrap()
    }

    #[test]
    fn a_small_slice_of_a_large_chunk_is_one_message() {
        let chunk = batch(1_000_000);
        let slice = chunk.slice(500_000, 8_192);
        let pieces = message_sized(slice);
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].num_rows(), 8_192);
    }

    #[test]
    fn a_large_batch_is_split_in_order_into_message_sized_slices() {
        let whole = batch(300_000);
        let pieces = message_sized(whole.clone());
        assert!(pieces.len() > 1, "{} pieces", pieces.len());
        let mut next = 0i64;
        for piece in &pieces {
            let bytes: usize = piece
                .columns()
                .iter()
                .map(|c| c.to_data().get_slice_memory_size().unwrap())
                .sum();
            assert!(
                bytes <= MESSAGE_TARGET + MESSAGE_TARGET / 8,
                "{bytes} bytes"
            );
            let ids = piece
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            assert_eq!(ids.value(0), next);
            next += ids.len() as i64;
        }
        assert_eq!(next, 300_000);
        assert!(message_sized(batch(0)).len() == 1);
    }
}

//! The HTTP status port: `GET /health` answers 200 with a JSON body (the
//! instance's name, version, uptime, sessions and loaded tables) while the
//! server serves, and 503 once it is stopping, which is what a load
//! balancer's HTTP check needs. On a group member, `GET /role/primary` and
//! `GET /role/readable` answer HAProxy's checks for the group's endpoints,
//! and `GET /group` gives the member's state. Requests are one line and a few headers, so
//! this reads at most 8 KiB per request and answers with `Connection:
//! close`; no HTTP library is needed for that.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Shared;

const REQUEST_LIMIT: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let stopping = shared.stopping.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &shared)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && !request.windows(2).any(|w| w == b"\n\n")
    {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
        if request.len() > REQUEST_LIMIT {
            return respond(&mut stream, 431, "text/plain", "request header too large\n").await;
        }
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "POST" && target.starts_with("/admin/") {
        let loopback = stream
            .peer_addr()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(false);
        let (code, body) = admin(shared, target, &text, loopback).await;
        return respond(&mut stream, code, "application/json", &body).await;
    }
    let path = target;
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, 405, "text/plain", "only GET is served\n").await;
    }
    let path = path.split('?').next().unwrap_or("");
    match path {
        "/health" | "/" => {
            let (code, body) = health(shared);
            let body = if method == "HEAD" {
                String::new()
            } else {
                body
            };
            respond(&mut stream, code, "application/json", &body).await
        }
        "/role/primary" | "/role/readable" | "/group" => {
            let (code, body) = group_role(shared, path);
            let body = if method == "HEAD" {
                String::new()
            } else {
                body
            };
            respond(&mut stream, code, "application/json", &body).await
        }
        _ => respond(&mut stream, 404, "text/plain", "not found: try /health\n").await,
    }
}

/// `POST /admin/<action>?enabled=0|1` on a group member, from loopback only
/// and with the member's token (`Authorization: Bearer <admin.token>`).
async fn admin(shared: &Shared, target: &str, request: &str, loopback: bool) -> (u16, String) {
    let error = |code: u16, message: &str| {
        (
            code,
            format!("{}\n", serde_json::json!({ "error": message })),
        )
    };
    let Some(group) = shared.instance.services().group.get() else {
        return error(503, "this instance is not a member of a group");
    };
    if !loopback {
        return error(403, "administration requests are taken from loopback only");
    }
    let token = request
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.trim().strip_prefix("Bearer "))
        .unwrap_or("");
    if !group.admits(token.trim()) {
        return error(
            401,
            "missing or wrong administration token (see admin.token in the member's directory)",
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let action = path.trim_start_matches("/admin/");
    let enabled = match query.split('&').find_map(|kv| kv.strip_prefix("enabled=")) {
        None => None,
        Some("1" | "true") => Some(true),
        Some("0" | "false") => Some(false),
        Some(other) => return error(400, &format!("enabled={other}: give 0 or 1")),
    };
    match group.admin(action, enabled).await {
        Ok(status) => (200, format!("{status}\n")),
        Err(message) => error(400, &message),
    }
}

/// A group member's role, for HAProxy's checks: `/role/primary` answers 200
/// only on the primary with writes open, `/role/readable` only while the
/// member serves reads within the group's lag bound; `/group` is the
/// member's whole state. 503 otherwise (and on an instance in no group, or
/// one that is stopping).
fn group_role(shared: &Shared, path: &str) -> (u16, String) {
    let Some(group) = shared.instance.services().group.get() else {
        return (
            503,
            "{\"error\": \"this instance is not a member of a group\"}\n".into(),
        );
    };
    let serving = !shared.stopping.is_cancelled() && !shared.instance.is_closed();
    let status = group.status();
    let yes = serving
        && match path {
            "/role/primary" => group.is_writable_primary(),
            "/role/readable" => group.is_readable(),
            _ => true,
        };
    (if yes { 200 } else { 503 }, format!("{status}\n"))
}

fn health(shared: &Shared) -> (u16, String) {
    let instance = &shared.instance;
    let serving = !shared.stopping.is_cancelled() && !instance.is_closed();
    let tables: Vec<serde_json::Value> = instance
        .loaded_tables()
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name.to_string(),
                "rows": t.rows,
                "load_status": t.load_status,
                "snapshot_scn": t.snapshot_scn,
            })
        })
        .collect();
    let body = serde_json::json!({
        "status": if serving { "serving" } else { "stopping" },
        "name": instance.name(),
        "version": super::SERVER_VERSION,
        "lakewave_version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": instance.started().elapsed().as_secs_f64(),
        "sessions": instance.processes().len(),
        "connections": shared.connections.lock().len(),
        "mysql_port": shared.mysql_address.port(),
        "tables": tables,
    });
    (if serving { 200 } else { 503 }, format!("{body}\n"))
}

async fn respond(stream: &mut TcpStream, code: u16, kind: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

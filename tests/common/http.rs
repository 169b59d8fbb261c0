//! A small HTTP/1.1 server for the event-stream tests: it serves JSON Lines
//! bodies (chunked, optionally cut off mid-stream or answered with an error
//! status), and receives replayed batches into an idempotent store keyed by
//! eventId, with failures on demand. Written on std::net so that every
//! byte on the wire — including a connection dropped mid-body — is ours.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// How a GET path answers.
#[derive(Clone)]
pub enum Route {
    /// 200 with these chunks; with `cut_after`, the connection closes after
    /// that many chunks, without the final empty chunk.
    Body {
        chunks: Vec<Vec<u8>>,
        cut_after: Option<usize>,
    },
    /// This status with this body.
    Status(u16, String),
    /// 302 to this location.
    Redirect(String),
}

impl Route {
    /// 200 with all of these chunks.
    pub fn whole(chunks: Vec<Vec<u8>>) -> Route {
        Route::Body {
            chunks,
            cut_after: None,
        }
    }
}

#[derive(Default)]
pub struct ServerState {
    pub routes: HashMap<String, Route>,
    /// The bearer token every request must carry, if any.
    pub token: Option<String>,
    /// Replayed events by eventId (the first copy wins: idempotent).
    pub received: BTreeMap<String, String>,
    /// eventIds in the order they were first received.
    pub order: Vec<String>,
    /// Every GET path requested, in order.
    pub gets: Vec<String>,
    /// The first eventId of every batch received, in order.
    pub batch_starts: Vec<String>,
    /// Accept this many more batches, then answer 503 (None: always accept).
    pub accept_batches: Option<u32>,
    /// Every Authorization header seen.
    pub auth_headers: Vec<String>,
    /// Wait this long before acknowledging each batch (a slow receiver).
    pub ack_delay: Option<std::time::Duration>,
}

pub struct HttpServer {
    pub port: u16,
    pub state: Arc<Mutex<ServerState>>,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ServerState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &st);
                });
            }
        });
        HttpServer { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn route(&self, path: &str, r: Route) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), r);
    }
}

fn respond(conn: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn handle(mut conn: TcpStream, st: &Mutex<ServerState>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path_only = path.split('?').next().unwrap_or("").to_string();
    let auth = headers.get("authorization").cloned().unwrap_or_default();
    let token = {
        let mut s = st.lock().unwrap();
        s.auth_headers.push(auth.clone());
        s.token.clone()
    };
    if let Some(t) = token
        && auth != format!("Bearer {t}")
    {
        return respond(&mut conn, 401, "missing or wrong token");
    }
    if method == "POST" {
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let delay = st.lock().unwrap().ack_delay;
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let mut s = st.lock().unwrap();
        if let Some(n) = s.accept_batches {
            if n == 0 {
                drop(s);
                return respond(&mut conn, 503, "ingest is down");
            }
            s.accept_batches = Some(n - 1);
        }
        let mut first = true;
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).expect("replayed line is JSON");
            let id = match &v["eventId"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if first {
                s.batch_starts.push(id.clone());
                first = false;
            }
            if !s.received.contains_key(&id) {
                s.order.push(id.clone());
                s.received
                    .insert(id, String::from_utf8(line.to_vec()).unwrap());
            }
        }
        drop(s);
        return respond(&mut conn, 200, "{\"ok\":true}");
    }
    st.lock().unwrap().gets.push(path_only.clone());
    let route = st.lock().unwrap().routes.get(&path_only).cloned();
    match route {
        None => respond(&mut conn, 404, "no such stream"),
        Some(Route::Status(code, body)) => respond(&mut conn, code, &body),
        Some(Route::Redirect(to)) => write!(
            conn,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Some(Route::Body { chunks, cut_after }) => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )?;
            for (i, c) in chunks.iter().enumerate() {
                if cut_after == Some(i) {
                    conn.flush()?;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    return conn.shutdown(Shutdown::Both);
                }
                write!(conn, "{:x}\r\n", c.len())?;
                conn.write_all(c)?;
                write!(conn, "\r\n")?;
            }
            write!(conn, "0\r\n\r\n")?;
            conn.flush()
        }
    }
}

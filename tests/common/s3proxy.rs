//! A small HTTP/1.1 proxy in front of the test S3 server that counts
//! requests by kind and injects faults: every Nth request answered `503
//! SlowDown`, a connection reset in the middle of a chosen request's body,
//! a hook run when the k-th request arrives (the crash harness kills
//! the client there), or a canned answer to chosen requests (the error a
//! server with object lock gives to a delete). It records each request's
//! method, target and Host header. It understands just enough HTTP for S3 clients:
//! Content-Length and chunked bodies, keep-alive, HEAD.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

type Hook = Box<dyn Fn(usize) + Send + Sync>;

#[derive(Default)]
pub struct Counts {
    pub get: AtomicUsize,
    pub put: AtomicUsize,
    pub head: AtomicUsize,
    pub delete: AtomicUsize,
    pub list: AtomicUsize,
    pub post: AtomicUsize,
    /// Requests answered with an injected fault.
    pub faults: AtomicUsize,
}

impl Counts {
    pub fn total(&self) -> usize {
        [
            &self.get,
            &self.put,
            &self.head,
            &self.delete,
            &self.list,
            &self.post,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }

    pub fn snapshot(&self) -> [usize; 6] {
        [
            self.get.load(Ordering::SeqCst),
            self.put.load(Ordering::SeqCst),
            self.head.load(Ordering::SeqCst),
            self.delete.load(Ordering::SeqCst),
            self.list.load(Ordering::SeqCst),
            self.post.load(Ordering::SeqCst),
        ]
    }
}

#[derive(Default)]
struct Faults {
    /// Answer every Nth request (1-based count) with 503 SlowDown.
    slow_down_every: usize,
    /// Requests (1-based) whose connection is reset halfway through the
    /// request body (or right after the head when there is none).
    reset_at: Vec<usize>,
    /// Run when request k arrives, before it is forwarded; the request is
    /// then dropped with its connection.
    hook_at: Option<(usize, Hook)>,
    /// Run when the n-th request whose method and target match arrives
    /// (then as `hook_at`).
    hook_on: Option<(String, String, usize, Hook)>,
    /// Answer every `method` request with `needle` in its target with this
    /// status line and XML body instead of forwarding it.
    answer_on: Vec<(String, String, String, String)>,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub host: String,
}

pub struct S3Proxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub counts: Arc<Counts>,
    /// Every request, in the order they arrived.
    pub requests: Arc<Mutex<Vec<Seen>>>,
    seen: Arc<AtomicUsize>,
    faults: Arc<Mutex<Faults>>,
    stop: Arc<AtomicBool>,
    /// The server is "stopped": every connection is reset.
    down: Arc<AtomicBool>,
}

impl S3Proxy {
    /// Listen on a free loopback port and forward to `upstream`
    /// (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> S3Proxy {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("a plain-HTTP upstream")
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let p = S3Proxy {
            endpoint,
            counts: Arc::default(),
            requests: Arc::default(),
            seen: Arc::default(),
            faults: Arc::default(),
            stop: Arc::default(),
            down: Arc::default(),
        };
        let (counts, requests, seen, faults, stop, down) = (
            p.counts.clone(),
            p.requests.clone(),
            p.seen.clone(),
            p.faults.clone(),
            p.stop.clone(),
            p.down.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                if down.load(Ordering::SeqCst) {
                    reset_connection(&conn);
                    continue;
                }
                let (counts, requests, seen, faults, upstream, down) = (
                    counts.clone(),
                    requests.clone(),
                    seen.clone(),
                    faults.clone(),
                    upstream.clone(),
                    down.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, &counts, &requests, &seen, &faults, &down);
                });
            }
        });
        p
    }

    pub fn slow_down_every(&self, n: usize) {
        self.faults.lock().unwrap().slow_down_every = n;
    }

    /// Reset the connection of the request `k` requests from now.
    pub fn reset_in(&self, k: usize) {
        let at = self.seen.load(Ordering::SeqCst) + k;
        self.faults.lock().unwrap().reset_at.push(at);
    }

    /// Run `hook` when the request `k` requests from now arrives.
    pub fn hook_in(&self, k: usize, hook: impl Fn(usize) + Send + Sync + 'static) {
        let at = self.seen.load(Ordering::SeqCst) + k;
        self.faults.lock().unwrap().hook_at = Some((at, Box::new(hook)));
    }

    /// Stop answering (every connection reset), or answer again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// A handle that takes the proxy down from a hook.
    pub fn down_switch(&self) -> Arc<AtomicBool> {
        self.down.clone()
    }

    /// Run `hook` when the n-th `method` request with `needle` in its
    /// target arrives (`("PUT", "/data/", 2)`: the second pack upload).
    pub fn hook_on(
        &self,
        method: &str,
        needle: &str,
        n: usize,
        hook: impl Fn(usize) + Send + Sync + 'static,
    ) {
        self.faults.lock().unwrap().hook_on =
            Some((method.to_string(), needle.to_string(), n, Box::new(hook)));
    }

    /// Answer every `method` request with `needle` in its target with
    /// `status` (`"403 Forbidden"`) and this XML error document, as a
    /// server would; the request never reaches the upstream. Rules add up.
    pub fn answer_on(&self, method: &str, needle: &str, status: &str, xml: &str) {
        self.faults.lock().unwrap().answer_on.push((
            method.to_string(),
            needle.to_string(),
            status.to_string(),
            xml.to_string(),
        ));
    }

    pub fn clear_faults(&self) {
        *self.faults.lock().unwrap() = Faults::default();
    }

    /// Requests seen so far (forwarded or not).
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// restic's location of `prefix` in `bucket` through this proxy.
    pub fn location(&self, bucket: &str, prefix: &str) -> String {
        format!("s3:{}/{bucket}/{prefix}", self.endpoint)
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

struct Head {
    text: String,
    method: String,
    target: String,
    host: String,
    length: Option<usize>,
    chunked: bool,
}

fn read_head(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Head>> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        text.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let first = text.lines().next().unwrap_or("").to_string();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut length = None;
    let mut chunked = false;
    let mut host = String::new();
    for l in text.lines().skip(1) {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().ok();
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "host" {
                host = v.to_string();
            }
        }
    }
    Ok(Some(Head {
        text,
        method,
        target,
        host,
        length,
        chunked,
    }))
}

/// Read a whole body (length or chunked), raw, as it was on the wire.
fn read_body(r: &mut BufReader<TcpStream>, h: &Head, no_body: bool) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    if no_body {
        return Ok(out);
    }
    if h.chunked {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            out.extend_from_slice(line.as_bytes());
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            out.extend_from_slice(&chunk);
            if size == 0 {
                return Ok(out);
            }
        }
    }
    if let Some(n) = h.length {
        let mut b = vec![0u8; n];
        r.read_exact(&mut b)?;
        out = b;
    }
    Ok(out)
}

fn serve(
    client: TcpStream,
    upstream: &str,
    counts: &Counts,
    requests: &Mutex<Vec<Seen>>,
    seen: &AtomicUsize,
    faults: &Mutex<Faults>,
    down: &AtomicBool,
) -> std::io::Result<()> {
    // heads and bodies go in separate writes: no Nagle delay between them
    client.set_nodelay(true)?;
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let up = TcpStream::connect(upstream)?;
    up.set_nodelay(true)?;
    let mut from_up = BufReader::new(up.try_clone()?);
    let mut to_up = up;
    while let Some(req) = read_head(&mut from_client)? {
        if down.load(Ordering::SeqCst) {
            reset_connection(&to_client);
            return Ok(());
        }
        let k = seen.fetch_add(1, Ordering::SeqCst) + 1;
        let counter = match req.method.as_str() {
            "GET" if is_listing(&req.target) => &counts.list,
            "GET" => &counts.get,
            "PUT" => &counts.put,
            "HEAD" => &counts.head,
            "DELETE" => &counts.delete,
            _ => &counts.post,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        requests.lock().unwrap().push(Seen {
            method: req.method.clone(),
            target: req.target.clone(),
            host: req.host.clone(),
        });
        let (slow, reset, hook, answer) = {
            let mut f = faults.lock().unwrap();
            let slow = f.slow_down_every > 0 && k.is_multiple_of(f.slow_down_every);
            let reset = f.reset_at.contains(&k);
            let hook = matches!(&f.hook_at, Some((at, _)) if *at == k);
            let mut hook = if hook {
                f.hook_at.take().map(|(_, h)| h)
            } else {
                None
            };
            if let Some((m, needle, n, _)) = &mut f.hook_on
                && *m == req.method
                && req.target.contains(needle.as_str())
            {
                *n -= 1;
                if *n == 0 {
                    hook = f.hook_on.take().map(|(_, _, _, h)| h);
                }
            }
            let answer = f
                .answer_on
                .iter()
                .find(|(m, needle, _, _)| *m == req.method && req.target.contains(needle.as_str()))
                .map(|(_, _, status, xml)| (status.clone(), xml.clone()));
            (slow, reset, hook, answer)
        };
        if let Some(h) = hook {
            counts.faults.fetch_add(1, Ordering::SeqCst);
            h(k);
            let _ = to_client.shutdown(Shutdown::Both);
            return Ok(());
        }
        if reset {
            counts.faults.fetch_add(1, Ordering::SeqCst);
            if let Some(n) = req.length {
                let mut half = vec![0u8; n / 2];
                let _ = from_client.read_exact(&mut half);
            }
            reset_connection(&to_client);
            return Ok(());
        }
        let body = read_body(&mut from_client, &req, false)?;
        if let Some((status, xml)) = answer {
            counts.faults.fetch_add(1, Ordering::SeqCst);
            let xml = if req.method == "HEAD" {
                ""
            } else {
                xml.as_str()
            };
            write!(
                to_client,
                "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\n\r\n{xml}",
                xml.len()
            )?;
            to_client.flush()?;
            continue;
        }
        if slow {
            counts.faults.fetch_add(1, Ordering::SeqCst);
            let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                       <Message>Please reduce your request rate.</Message></Error>";
            write!(
                to_client,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nRetry-After: 0\r\n\r\n{}",
                if req.method == "HEAD" { 0 } else { doc.len() },
                if req.method == "HEAD" { "" } else { doc }
            )?;
            to_client.flush()?;
            continue;
        }
        to_up.write_all(req.text.as_bytes())?;
        to_up.write_all(&body)?;
        to_up.flush()?;
        let Some(resp) = read_head(&mut from_up)? else {
            return Ok(());
        };
        let status: u16 = resp
            .text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let no_body = req.method == "HEAD" || status == 204 || status == 304;
        let rbody = read_body(&mut from_up, &resp, no_body)?;
        to_client.write_all(resp.text.as_bytes())?;
        to_client.write_all(&rbody)?;
        to_client.flush()?;
    }
    Ok(())
}

/// Close with RST rather than FIN (linger 0), as a dropped connection.
fn reset_connection(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the right size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// A GET of the bucket (no key) is a listing.
fn is_listing(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    path.trim_matches('/').split('/').count() <= 1
        && (query.contains("list-type") || query.contains("prefix") || query.contains("delimiter"))
}

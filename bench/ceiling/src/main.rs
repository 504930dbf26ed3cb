//! The benchmark's ceiling: what the HTTP + TLS stack Lockstep is built on
//! can serve on this machine when the handler does nothing. It accepts
//! connections exactly as `lockstep serve` does (tokio-rustls with
//! aws-lc-rs, ALPN h2/http1.1, TCP_NODELAY, hyper-util's auto builder, an
//! axum router) and answers every request for `/{name}` (any method; a
//! request body is read and dropped) with the bytes of `{bodies}/{name}.json`,
//! loaded once at start.
//!
//! `/sign/{name}` answers the same, after one RS256 signature (RSA-2048,
//! PKCS#1 v1.5, SHA-256, aws-lc-rs as Lockstep uses it) over the body: the
//! ceiling of an endpoint that must sign what it returns, as a token
//! endpoint issuing RS256 JWTs does.
//!
//! `/audited/{name}` answers the same after appending one hash-chained
//! record (about 400 bytes of JSON: sequence number, time, the request's
//! method, path and peer, the SHA-256 of the previous line) to a file with
//! one `write(2)` under a mutex: the least an audited request costs.
//!
//! Usage: `lockstep-bench-ceiling --listen 127.0.0.1:0 --cert CERT.pem
//! --key KEY.pem --bodies DIR`; prints `listening on ADDR` when ready.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

struct Served {
    bodies: HashMap<String, Bytes>,
    key: aws_lc_rs::rsa::KeyPair,
    audit: std::sync::Mutex<Chain>,
}

/// The end of the audit file's chain.
struct Chain {
    file: std::fs::File,
    seq: u64,
    prev: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Bodies = Arc<Served>;

struct Args {
    listen: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    bodies: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut listen = None;
    let mut cert = None;
    let mut key = None;
    let mut bodies = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| format!("--listen: {e}"))?),
            "--cert" => cert = Some(PathBuf::from(value)),
            "--key" => key = Some(PathBuf::from(value)),
            "--bodies" => bodies = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        cert: cert.ok_or("--cert is required")?,
        key: key.ok_or("--key is required")?,
        bodies: bodies.ok_or("--bodies is required")?,
    })
}

fn load_bodies(dir: &std::path::Path) -> Result<HashMap<String, Bytes>, String> {
    let mut map = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        map.insert(name.to_owned(), Bytes::from(bytes));
    }
    Ok(map)
}

fn tls_config(args: &Args) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(&args.cert)
        .map_err(|e| format!("{}: {e}", args.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", args.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&args.key)
        .map_err(|e| format!("{}: {e}", args.key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn answer(State(served): State<Bodies>, Path(name): Path<String>, body: Body) -> Response {
    // Read the request body, as a real handler would.
    let _ = axum::body::to_bytes(body, 16 * 1024 * 1024).await;
    static_body(&served, &name)
}

async fn signed(State(served): State<Bodies>, Path(name): Path<String>, body: Body) -> Response {
    let _ = axum::body::to_bytes(body, 16 * 1024 * 1024).await;
    let Some(b) = served.bodies.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut sig = vec![0; served.key.public_modulus_len()];
    if served
        .key
        .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, b, &mut sig)
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    static_body(&served, &name)
}

async fn audited(
    State(served): State<Bodies>,
    Path(name): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().to_string();
    let _ = axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024).await;
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let written = {
        let mut chain = served.audit.lock().unwrap_or_else(|p| p.into_inner());
        chain.seq += 1;
        let mut line = format!(
            "{{\"seq\":{},\"time\":{time},\"type\":\"request\",\"tenant\":\"00000000-0000-0000-0000-000000000000\",\"principal\":\"00000000-0000-0000-0000-000000000000\",\"action\":\"{method} {path}\",\"result\":{{\"status\":200}},\"request_id\":\"00000000-0000-0000-0000-000000000000\",\"prev\":\"{}\"",
            chain.seq, chain.prev
        );
        let hash = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, line.as_bytes()).as_ref());
        line.push_str(&format!(",\"hash\":\"{hash}\"}}\n"));
        chain.prev = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, line.as_bytes()).as_ref());
        chain.file.write_all(line.as_bytes())
    };
    if written.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    static_body(&served, &name)
}

fn static_body(served: &Served, name: &str) -> Response {
    match served.bodies.get(name) {
        Some(b) => (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            b.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = args()?;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| format!("cannot make an RSA key: {e}"))?;
    let audit_path = args.bodies.join("audit.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&audit_path)
        .map_err(|e| format!("{}: {e}", audit_path.display()))?;
    let bodies: Bodies = Arc::new(Served {
        bodies: load_bodies(&args.bodies)?,
        key,
        audit: std::sync::Mutex::new(Chain {
            file,
            seq: 0,
            prev: "0".repeat(64),
        }),
    });
    let acceptor = TlsAcceptor::from(tls_config(&args)?);
    let app = Router::new()
        .route("/{name}", any(answer))
        .route("/sign/{name}", any(signed))
        .route("/audited/{name}", any(audited))
        .with_state(bodies);
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {local}");
    let _ = std::io::stdout().flush();
    let builder = Builder::new(TokioExecutor::new());
    loop {
        let (tcp, _peer) = match listener.accept().await {
            Ok(a) => a,
            Err(_) => continue,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = tower::ServiceExt::map_request(
                app,
                |req: axum::http::Request<hyper::body::Incoming>| req.map(Body::new),
            );
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(svc))
                .await;
        });
    }
}

//! Two processes, one request-reply service: this process is a client that
//! makes calls, a copy of itself is the server. Each request carries two
//! numbers (`[u64; 2]`, a `Pod` value) and a W3C trace context; the server
//! answers with their sum, and a stream of three replies for every
//! hundredth request. The client checks every reply and prints the calls'
//! round-trip percentiles.
//!
//! ```sh
//! cargo run --release --example request_reply
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use shmring::request_reply::Service;

const CALLS: u64 = 20_000;
const TIMEOUT: Duration = Duration::from_secs(5);
const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let (Some(role), Some(name)) = (args.next(), args.next()) {
        assert_eq!(role, "server");
        return serve(&name);
    }
    let name = format!("shmring-example-rr-{}", std::process::id());
    // Either side may come first: both open or create the service.
    let service = Service::open_or_create(&name, 1 << 16)?;
    let mut server = Command::new(std::env::current_exe()?)
        .args(["server", &name])
        .spawn()?;
    let mut client = service.client(1 << 16)?;
    let mut rtts = Vec::with_capacity(CALLS as usize);
    for i in 0..CALLS {
        let start = Instant::now();
        let pair = [i, i * 3];
        let id = client.send_traced(shmring::bytemuck::bytes_of(&pair), TRACE, TIMEOUT)?;
        let mut replies = 0;
        loop {
            let reply = client.recv_timeout(TIMEOUT)?;
            assert_eq!(reply.id(), id, "a reply to another request");
            assert_eq!(reply.value::<u64>()?, i * 4 + replies, "a wrong sum");
            replies += 1;
            if reply.is_last() {
                break;
            }
        }
        assert_eq!(replies, if i % 100 == 0 { 3 } else { 1 });
        rtts.push(start.elapsed());
    }
    // Tell the server to end.
    client.send_value(&[u64::MAX, 0], TIMEOUT)?;
    drop(client.recv_timeout(TIMEOUT)?);
    if !server.wait()?.success() {
        return Err("the server failed".into());
    }
    rtts.sort();
    let at = |q: f64| rtts[((rtts.len() as f64 * q) as usize).min(rtts.len() - 1)];
    println!(
        "{CALLS} calls across processes: p50 {:?}, p99 {:?}, p99.9 {:?}",
        at(0.5),
        at(0.99),
        at(0.999)
    );
    Ok(())
}

fn serve(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let service = Service::open_or_create(name, 1 << 16)?;
    let mut server = service.server()?;
    loop {
        let mut request = server.recv_timeout(TIMEOUT)?;
        assert_eq!(request.traceparent().unwrap_or(TRACE), TRACE);
        let [a, b] = request.value::<[u64; 2]>()?;
        if a == u64::MAX {
            request.reply_value_last(&0u64)?;
            return Ok(());
        }
        if a % 100 == 0 {
            request.reply(&(a + b).to_le_bytes())?;
            request.reply(&(a + b + 1).to_le_bytes())?;
            request.reply_value_last(&(a + b + 2))?;
        } else {
            request.reply_value_last(&(a + b))?;
        }
    }
}

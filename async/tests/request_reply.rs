//! A request-reply client awaited: a reply wakes the task; a server that
//! dies while the task is parked wakes it too (through the waiter
//! thread's looks), with `ServerGone`, or, for an idempotent call, with
//! the reply of another server. Each test's event happens by
//! construction: a server goes only once the reactor shows the task
//! armed.

#[macro_use]
#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{arg, child_command, unique_name, ChildGuard, Sweep};
use shmring::request_reply::{CallError, Service};
use shmring_async::{AsyncClient, Reactor};

children!(child);

fn child(role: &str) {
    match role {
        // Serve one request: say so, then hang (until killed).
        "serve-and-hang" => {
            let service = Service::open(&arg::<String>("SERVICE")).unwrap();
            let mut server = service.server().unwrap();
            println!("serving");
            let _request = server.recv_timeout(PATIENCE).unwrap();
            println!("holding");
            std::thread::sleep(PATIENCE);
        }
        // Await a call in a process denied `membarrier`; say how it ended.
        "call-without-membarrier" => {
            deny_membarrier();
            println!("denied");
            let service = Service::open(&arg::<String>("SERVICE")).unwrap();
            let mut client =
                AsyncClient::with_reactor(service.client(4096).unwrap(), &Reactor::new());
            let call = runtime().block_on(async {
                let call = tokio::time::timeout(PATIENCE, client.call(b"hello?")).await;
                call.map(|r| r.map(|reply| reply.payload().to_vec()))
            });
            match call {
                Ok(Err(CallError::ServerGone { .. })) => println!("gone"),
                other => println!("{other:?}"),
            }
        }
        other => panic!("no child role {other}"),
    }
}

/// Make this process's `membarrier` calls fail with EPERM, as a seccomp
/// profile without it does (before any ring is touched: the library
/// asks once): its waiter then has no heavy barrier.
fn deny_membarrier() {
    use libc::{sock_filter, sock_fprog};
    let op = |code: u32, k: u32, jt: u8, jf: u8| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let filter = [
        // The system call's number (`seccomp_data.nr`, at offset 0).
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_membarrier as u32,
            0,
            1,
        ),
        op(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            0,
            0,
        ),
        op(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ];
    let prog = sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: integers, and a filter program that outlives the call (the
    // kernel copies it); the filter only makes one system call fail.
    let installed = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog) == 0
    };
    assert!(installed, "seccomp: {}", std::io::Error::last_os_error());
    // SAFETY: MEMBARRIER_CMD_QUERY (0) takes integers only.
    let query = unsafe { libc::syscall(libc::SYS_membarrier, 0, 0, 0) };
    assert_eq!(query, -1, "membarrier still answers");
}

fn spawn(role: &str, service: &str) -> ChildGuard {
    let mut cmd = child_command(role);
    cmd.env("SERVICE", service).stdout(Stdio::piped());
    ChildGuard::from(cmd.spawn().unwrap())
}

/// Long enough to mean "hung"; never reached by a passing test.
const PATIENCE: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Wait (bounded) until `reactor` has `n` tasks armed.
fn await_armed(reactor: &Reactor, n: usize) {
    let hung = Instant::now() + PATIENCE;
    while reactor.stats().armed != n {
        assert!(Instant::now() < hung, "hung: {:?}", reactor.stats());
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A task awaiting a call parks; the server's reply wakes it, and each
/// reply is its own call's.
#[test]
fn an_awaited_call_is_woken_by_its_reply() {
    let name = unique_name("arr-call");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut server = service.server().unwrap();
    let reactor = Reactor::new();
    let mut client = AsyncClient::with_reactor(service.client(4096).unwrap(), &reactor);
    let watcher = reactor.clone();
    let served = std::thread::spawn(move || {
        for _ in 0..3 {
            // The task is parked before the request is answered.
            await_armed(&watcher, 1);
            let request = server.recv_timeout(PATIENCE).unwrap();
            let echo = [request.payload(), b"!"].concat();
            request.reply_last(&echo).unwrap();
        }
    });
    runtime().block_on(async {
        for i in 0..3u8 {
            let reply = tokio::time::timeout(PATIENCE, client.call(&[i]))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(reply.payload(), [i, b'!']);
        }
    });
    served.join().unwrap();
    // Each reply came while its task was parked: a wake that did not
    // come would have hung the call to its timeout.
    assert_eq!(client.get_ref().outstanding(), 0);
}

/// The server goes while the task is parked on its reply: the waiter's
/// look finds it gone and wakes the task, which ends with `ServerGone`
/// (not at a timeout); with no server at all, the first look says so.
#[test]
fn a_server_that_goes_wakes_the_awaiting_task_with_server_gone() {
    let name = unique_name("arr-gone");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let server = service.server().unwrap();
    let reactor = Reactor::new();
    let mut client = AsyncClient::with_reactor(service.client(4096).unwrap(), &reactor);
    let watcher = reactor.clone();
    let gone = std::thread::spawn(move || {
        await_armed(&watcher, 1);
        drop(server);
    });
    let rt = runtime();
    let started = Instant::now();
    let call = rt.block_on(async {
        let call = tokio::time::timeout(PATIENCE, client.call(b"hello?")).await;
        call.map(|r| r.map(|reply| reply.payload().to_vec()))
    });
    match call {
        Ok(Err(CallError::ServerGone {
            outstanding: 1,
            stranded,
            ..
        })) => assert_eq!(stranded.len(), 1),
        other => panic!("{other:?}"),
    }
    gone.join().unwrap();
    assert!(started.elapsed() < PATIENCE);
    // The call was given up; with no server, the next ends at once.
    assert_eq!(client.get_ref().outstanding(), 0);
    let next = rt
        .block_on(client.call(b"anyone?"))
        .map(|r| r.payload().to_vec());
    assert!(
        matches!(next, Err(CallError::ServerGone { .. })),
        "{next:?}"
    );
}

/// Without `membarrier` (a seccomp profile that denies it), the waiter
/// makes no looks for dead servers; the task, woken every millisecond,
/// asks the kernel itself, so a server killed holding its request still
/// ends the call with `ServerGone`, not at its timeout. The caller starts
/// once the server serves (a lane with no server would end the call at
/// once), and the kill comes once the server holds the request.
#[test]
fn without_membarrier_an_awaited_call_still_hears_its_server_died() {
    let name = unique_name("arr-unpaired");
    let _sweep = Sweep(name.clone());
    let _service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut server = spawn("serve-and-hang", &name);
    let mut said = std::io::BufRead::lines(std::io::BufReader::new(server.stdout()));
    let mut next = || said.next().expect("the server exited").unwrap();
    assert_eq!(next(), "serving");
    let mut caller = spawn("call-without-membarrier", &name);
    let mut caller_said = std::io::BufRead::lines(std::io::BufReader::new(caller.stdout()));
    let mut caller_next = || caller_said.next().expect("the caller exited").unwrap();
    // Said before it calls: a caller that could not deny itself
    // `membarrier` fails here, not after the server's wait.
    assert_eq!(caller_next(), "denied");
    assert_eq!(next(), "holding");
    server.kill();
    assert_eq!(caller_next(), "gone");
}

/// An idempotent call whose server goes while the task is parked is sent
/// to the other lane's server, whose reply wakes the task.
#[test]
fn an_idempotent_call_outlives_its_server() {
    let name = unique_name("arr-retry");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let first = service.server().unwrap();
    let reactor = Reactor::new();
    let mut client = AsyncClient::with_reactor(service.client(4096).unwrap(), &reactor);
    let mut second = service.server().unwrap();
    assert_eq!((first.lane(), second.lane()), (0, 1));
    let watcher = reactor.clone();
    let served = std::thread::spawn(move || {
        await_armed(&watcher, 1);
        drop(first);
        let request = second.recv_timeout(PATIENCE).unwrap();
        assert!(request.is_idempotent());
        request.reply_last(b"from lane 1").unwrap();
    });
    let rt = runtime();
    let reply = rt
        .block_on(async { tokio::time::timeout(PATIENCE, client.call_idempotent(b"again")).await })
        .unwrap()
        .unwrap()
        .payload()
        .to_vec();
    served.join().unwrap();
    assert_eq!(reply, b"from lane 1");
    assert_eq!(client.get_ref().stats().retried, 1);
}

/// A call dropped while it waits gives its request up: its late reply is
/// dropped and counted, and the next call is not refused.
#[test]
fn a_dropped_call_is_cancelled() {
    let name = unique_name("arr-drop");
    let _sweep = Sweep(name.clone());
    let service = Service::open_or_create(&name, 1 << 16).unwrap();
    let mut server = service.server().unwrap();
    let reactor = Reactor::new();
    let mut client = AsyncClient::with_reactor(service.client(4096).unwrap(), &reactor);
    let rt = runtime();
    rt.block_on(async {
        let call = client.call(b"slow");
        assert!(tokio::time::timeout(Duration::from_millis(1), call)
            .await
            .is_err());
    });
    assert_eq!(reactor.stats().armed, 0);
    assert_eq!(client.get_ref().outstanding(), 0);
    server
        .recv_timeout(PATIENCE)
        .unwrap()
        .reply_last(b"too late")
        .unwrap();
    let request = std::thread::spawn(move || {
        let request = server.recv_timeout(PATIENCE).unwrap();
        request.reply_last(b"in time").unwrap();
    });
    let reply = rt
        .block_on(client.call(b"next"))
        .unwrap()
        .payload()
        .to_vec();
    request.join().unwrap();
    assert_eq!(reply, b"in time");
    assert_eq!(client.get_ref().stats().late, 1);
}

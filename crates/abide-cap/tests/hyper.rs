//! `ConcurrencyCap` in front of a hyper-util client talking to a real hyper server on
//! loopback, in virtual time: the server enforces a fixed window and says so in
//! `RateLimit` headers, and streams each answer in two chunks.

use abide_cap::{BoxError, ConcurrencyCapLayer, InFlight};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const LIMIT: u64 = 20;
const WINDOW: Duration = Duration::from_secs(2);
/// The pause between the two chunks of every answer: the stream is open that long.
const GAP: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct State {
    start: Instant,
    window: u64,
    used: u64,
    /// Answers whose body has not ended yet, and the most at once.
    open: usize,
    most_open: usize,
    /// Arrival instant and status of every request.
    log: Vec<(Instant, u16)>,
}

type Shared = Arc<Mutex<State>>;

async fn serve() -> (Shared, SocketAddr) {
    let state = Arc::new(Mutex::new(State {
        start: Instant::now(),
        window: 0,
        used: 0,
        open: 0,
        most_open: 0,
        log: Vec::new(),
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = state.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            let service = hyper::service::service_fn(move |req| answer(s.clone(), req));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (state, addr)
}

async fn answer(
    state: Shared,
    _req: Request<Incoming>,
) -> Result<Response<Channel<Bytes, std::convert::Infallible>>, std::convert::Infallible> {
    let now = Instant::now();
    let (status, remaining, reset) = {
        let mut st = state.lock().unwrap();
        let elapsed = now - st.start;
        let window = (elapsed.as_nanos() / WINDOW.as_nanos()) as u64;
        if window != st.window {
            st.window = window;
            st.used = 0;
        }
        let ok = st.used < LIMIT;
        if ok {
            st.used += 1;
        }
        let end = st.start + WINDOW * (window as u32 + 1);
        // Whole seconds, rounded up, as the header carries them.
        let reset = (end - now).as_secs_f64().ceil() as u64;
        let status = if ok { 200 } else { 429 };
        st.log.push((now, status));
        st.open += 1;
        st.most_open = st.most_open.max(st.open);
        (status, LIMIT - st.used, reset)
    };
    let (mut tx, body) = Channel::new(1);
    let s = state.clone();
    tokio::spawn(async move {
        let _ = tx.send_data(Bytes::from_static(b"{\"part\":1}")).await;
        tokio::time::sleep(GAP).await;
        let _ = tx.send_data(Bytes::from_static(b"{\"part\":2}")).await;
        drop(tx);
        s.lock().unwrap().open -= 1;
    });
    let mut res = Response::builder()
        .status(status)
        .header(
            "ratelimit",
            format!("limit={LIMIT}, remaining={remaining}, reset={reset}"),
        )
        .header(
            "ratelimit-policy",
            format!("{LIMIT};w={}", WINDOW.as_secs()),
        );
    if status == 429 {
        res = res.header("retry-after", reset.to_string());
    }
    Ok(res.body(body).unwrap())
}

#[tokio::test(start_paused = true)]
async fn over_a_real_hyper_client_the_cap_holds_streams_and_the_learned_window_gives_no_429() {
    let (state, addr) = serve().await;
    // Paused time jumps to the next timer whenever every task waits, loopback I/O
    // included; a 1 ms ticker keeps those jumps small, so a socket read never looks like
    // minutes to the cap's wait timeouts.
    let ticker = tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(3))
        .layer(client);

    // Three windows' worth: the last 20 can only go in the third window.
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(3 * LIMIT as usize));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (svc, left) = (svc.clone(), left.clone());
        workers.push(tokio::spawn(async move {
            let mut bodies = 0usize;
            while left
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let req = Request::get(format!("http://{addr}/v1/items"))
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let res = svc.clone().oneshot(req).await?;
                assert_eq!(res.status(), 200, "no 429 reaches the caller");
                let body = res.into_body().collect().await?.to_bytes();
                assert_eq!(body.as_ref(), b"{\"part\":1}{\"part\":2}");
                bodies += 1;
            }
            Ok::<_, BoxError>(bodies)
        }));
    }
    let mut bodies = 0;
    for w in workers {
        bodies += w.await.unwrap().unwrap();
    }

    ticker.abort();
    let st = state.lock().unwrap();
    assert!(
        st.most_open <= 3,
        "the permit is held until the streamed body ends: {} open at once",
        st.most_open
    );
    assert!(
        st.log.iter().all(|(_, status)| *status == 200),
        "the learned window was never exceeded: {:?}",
        st.log.iter().filter(|(_, s)| *s != 200).count()
    );
    assert_eq!(
        bodies,
        3 * LIMIT as usize,
        "every answer was read to its end"
    );
    let last = st.log.last().map(|(at, _)| *at - st.start).unwrap();
    assert!(
        last >= 2 * WINDOW,
        "20 per window: the last request waits for the third window, sent at {last:?}"
    );
}

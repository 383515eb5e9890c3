//! A tokio service that awaits two rings and a timer in one `select!`:
//! prices on an SPSC ring of values, orders on a byte ring of messages,
//! and a heartbeat every 100 ms. Producers in another process would open
//! the rings by name; here two threads stand in for them.
//!
//! ```sh
//! cargo run -p shmring-async --example select
//! ```

use std::time::Duration;

use shmring_async::AsyncConsumer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pid = std::process::id();
    let prices = shmring::Spsc::<f64>::create(&format!("example-prices-{pid}"), 64)?;
    let orders = shmring::ByteRing::create(&format!("example-orders-{pid}"), 4096)?;

    // The other processes, played by threads.
    let mut tx = prices.producer()?;
    let feed = std::thread::spawn(move || {
        for i in 0..5 {
            std::thread::sleep(Duration::from_millis(70));
            let _ = tx.try_push(100.0 + i as f64 / 4.0);
        }
        tx.close();
    });
    let mut otx = orders.producer()?;
    let desk = std::thread::spawn(move || {
        for order in ["buy 10", "sell 4", "buy 1"] {
            std::thread::sleep(Duration::from_millis(110));
            let _ = otx.try_send(order.as_bytes());
        }
        otx.close();
    });

    let mut prices_rx = AsyncConsumer::new(prices.consumer()?);
    let mut orders_rx = AsyncConsumer::new(orders.consumer()?);
    let mut heartbeat = tokio::time::interval(Duration::from_millis(100));
    let (mut prices_open, mut orders_open) = (true, true);
    while prices_open || orders_open {
        // Each branch's future takes nothing unless it wins, so the
        // losers lose nothing.
        tokio::select! {
            price = prices_rx.recv(), if prices_open => match price {
                Ok(p) => println!("price {p:.2}"),
                Err(_) => prices_open = false, // closed: every price was read
            },
            order = orders_rx.recv_with(|m| String::from_utf8_lossy(&m).into_owned()),
                if orders_open => match order {
                Ok(o) => println!("order {o:?}"),
                Err(_) => orders_open = false,
            },
            _ = heartbeat.tick() => println!("heartbeat"),
        }
    }
    feed.join().unwrap();
    desk.join().unwrap();
    Ok(())
}

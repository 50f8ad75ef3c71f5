//! One-way latency by ping-pong: thread A sends a sequence number, thread B echoes it
//! back on a second queue, A records half the round trip. Threads pinned to distinct
//! cores; the first 10,000 round trips warm up and are not recorded.

use std::time::Instant;

use hdrhistogram::Histogram;

use crate::measure::{pin, two_cores};

pub const IMPLS: [&str; 7] = [
    "roda-journal",
    "roda-segmented",
    "rtrb",
    "crossbeam-channel",
    "std-sync-channel",
    "disruptor",
    "atomic-ring",
];

const WARM_UP: u64 = 10_000;

/// One direction of a ping-pong.
trait Link: Send + 'static {
    fn send(&mut self, v: u64);
    fn recv(&mut self) -> Option<u64>;
}

struct Journal(roda::JournalStore<u64>, roda::JournalReader<u64>);
impl Link for Journal {
    #[inline]
    fn send(&mut self, v: u64) {
        self.0.append(&v);
    }
    #[inline]
    fn recv(&mut self) -> Option<u64> {
        self.1.next().copied()
    }
}

struct Segmented(roda::SegmentedJournal<u64>, roda::SegmentedReader<u64>);
impl Link for Segmented {
    #[inline]
    fn send(&mut self, v: u64) {
        self.0.append(&v);
    }
    #[inline]
    fn recv(&mut self) -> Option<u64> {
        self.1.next().copied()
    }
}

struct Rtrb(rtrb::Producer<u64>, rtrb::Consumer<u64>);
impl Link for Rtrb {
    #[inline]
    fn send(&mut self, v: u64) {
        while self.0.push(v).is_err() {}
    }
    #[inline]
    fn recv(&mut self) -> Option<u64> {
        self.1.pop().ok()
    }
}

struct Crossbeam(
    crossbeam_channel::Sender<u64>,
    crossbeam_channel::Receiver<u64>,
);
impl Link for Crossbeam {
    #[inline]
    fn send(&mut self, v: u64) {
        self.0.send(v).expect("send");
    }
    #[inline]
    fn recv(&mut self) -> Option<u64> {
        self.1.try_recv().ok()
    }
}

struct StdChannel(
    std::sync::mpsc::SyncSender<u64>,
    std::sync::mpsc::Receiver<u64>,
);
impl Link for StdChannel {
    #[inline]
    fn send(&mut self, v: u64) {
        self.0.send(v).expect("send");
    }
    #[inline]
    fn recv(&mut self) -> Option<u64> {
        self.1.try_recv().ok()
    }
}

struct Ring(crate::ring::Producer<u64>, crate::ring::Consumer<u64>);
impl Link for Ring {
    #[inline]
    fn send(&mut self, v: u64) {
        while !self.0.push(v) {}
    }
    #[inline]
    fn recv(&mut self) -> Option<u64> {
        self.1.pop()
    }
}

/// The disruptor crate with user-driven event pollers on both sides (busy-spin), so
/// each thread publishes into one ring and polls the other.
struct Disruptor(
    disruptor::SingleProducer<u64, disruptor::SingleConsumerBarrier>,
    disruptor::EventPoller<u64, disruptor::SingleProducerBarrier>,
);
impl Link for Disruptor {
    #[inline]
    fn send(&mut self, v: u64) {
        use disruptor::Producer;
        self.0.publish(|e| *e = v);
    }
    #[inline]
    fn recv(&mut self) -> Option<u64> {
        match self.1.poll() {
            Ok(mut events) => (&mut events).next().copied(),
            Err(_) => None,
        }
    }
}

fn disruptor_ring() -> (
    disruptor::SingleProducer<u64, disruptor::SingleConsumerBarrier>,
    disruptor::EventPoller<u64, disruptor::SingleProducerBarrier>,
) {
    let (poller, builder) =
        disruptor::build_single_producer(1024, || 0u64, disruptor::BusySpin).new_event_poller();
    (builder.build(), poller)
}

fn ping_pong<L: Link>(mut a: L, mut b: L, rounds: u64) -> Histogram<u64> {
    let total = rounds + WARM_UP;
    let (ca, cb) = two_cores();
    let echo = std::thread::spawn(move || {
        pin(cb);
        let mut echoed = 0;
        while echoed < total {
            if let Some(v) = b.recv() {
                b.send(v);
                echoed += 1;
            }
        }
    });
    let measure = std::thread::spawn(move || {
        pin(ca);
        let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram");
        for i in 0..total {
            let start = Instant::now();
            a.send(i);
            let back = loop {
                if let Some(v) = a.recv() {
                    break v;
                }
            };
            let one_way = start.elapsed().as_nanos() as u64 / 2;
            assert_eq!(back, i, "echo out of order");
            if i >= WARM_UP {
                hist.record(one_way.max(1)).expect("record");
            }
        }
        hist
    });
    let hist = measure.join().expect("measuring thread");
    echo.join().expect("echo thread");
    hist
}

/// Runs `name` for `rounds` recorded round trips; returns the one-way latency histogram (ns).
pub fn run(name: &str, rounds: u64) -> Histogram<u64> {
    let cap = (rounds + WARM_UP) as usize;
    match name {
        "roda-journal" => {
            let opts = || roda::JournalStore::<u64>::options().populate(true);
            let ping = opts().in_memory(cap).expect("journal");
            let pong = opts().in_memory(cap).expect("journal");
            let (ping_r, pong_r) = (ping.reader(), pong.reader());
            ping_pong(Journal(ping, pong_r), Journal(pong, ping_r), rounds)
        }
        "roda-segmented" => {
            // A recycled ring of 4 segments of 256 records, the size of the peers' rings.
            let opts = || roda::SegmentedJournal::<u64>::options().populate(true);
            let ping = opts().in_memory(256, 4).expect("segmented journal");
            let pong = opts().in_memory(256, 4).expect("segmented journal");
            let (ping_r, pong_r) = (ping.reader(), pong.reader());
            ping_pong(Segmented(ping, pong_r), Segmented(pong, ping_r), rounds)
        }
        "rtrb" => {
            let (p1, c1) = rtrb::RingBuffer::new(1024);
            let (p2, c2) = rtrb::RingBuffer::new(1024);
            ping_pong(Rtrb(p1, c2), Rtrb(p2, c1), rounds)
        }
        "crossbeam-channel" => {
            let (s1, r1) = crossbeam_channel::bounded(1024);
            let (s2, r2) = crossbeam_channel::bounded(1024);
            ping_pong(Crossbeam(s1, r2), Crossbeam(s2, r1), rounds)
        }
        "std-sync-channel" => {
            let (s1, r1) = std::sync::mpsc::sync_channel(1024);
            let (s2, r2) = std::sync::mpsc::sync_channel(1024);
            ping_pong(StdChannel(s1, r2), StdChannel(s2, r1), rounds)
        }
        "disruptor" => {
            let (p1, c1) = disruptor_ring();
            let (p2, c2) = disruptor_ring();
            ping_pong(Disruptor(p1, c2), Disruptor(p2, c1), rounds)
        }
        "atomic-ring" => {
            let (p1, c1) = crate::ring::ring(1024);
            let (p2, c2) = crate::ring::ring(1024);
            ping_pong(Ring(p1, c2), Ring(p2, c1), rounds)
        }
        other => panic!("unknown hop implementation {other}"),
    }
}

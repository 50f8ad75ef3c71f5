//! The umbrella crate exposes each member crate as a module and the everyday names at
//! its root and in the prelude.

use roda::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, roda::bytemuck::Pod, roda::bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    id: u64,
    price: f64,
}

#[test]
fn prelude_covers_stores_traits_and_pipes() -> roda::Result<()> {
    let mut journal = JournalStore::<Tick>::in_memory(8)?;
    let mut reader: JournalReader<Tick> = journal.reader();
    Appendable::append(&mut journal, &Tick { id: 1, price: 2.0 });
    assert_eq!(
        IterativeReadable::next(&mut reader),
        Some(&Tick { id: 1, price: 2.0 })
    );

    let mut slots = SlotStore::<Tick>::in_memory(4)?;
    Settable::set(&mut slots, 3, &Tick { id: 3, price: 1.0 });
    let slot_reader: SlotReader<Tick> = slots.reader();
    assert_eq!(slot_reader.get(3), Some(Tick { id: 3, price: 1.0 }));

    let mut stage = pipe![
        map(|t: &Tick| t.price),
        filter(|p: &f64| *p > 1.0),
        inspect(|_: &f64| {})
    ];
    let mut out: Vec<f64> = Vec::new();
    stage.process(&Tick { id: 1, price: 2.0 }, &mut out);
    stage.process(&Tick { id: 1, price: 0.5 }, &mut out);
    assert_eq!(out, vec![2.0]);

    let mut pipeline = StageEngine::<Tick, Tick>::with_capacity(4)
        .with_wait_strategy(WaitStrategy::Adaptive)
        .with_pinning(Pinning::None)
        .add_stage(map(|t: &Tick| t.price));
    pipeline.send(&Tick { id: 1, price: 3.5 });
    assert_eq!(pipeline.receive(), 3.5);
    let mut engine = RodaEngine::new();
    engine.run_worker("noop", || Progress::Idle)?;
    engine.shutdown()?;

    // Segmented journals: a gating reader, a follower, and a bounded pipeline.
    let mut segmented = SegmentedJournal::<Tick>::in_memory(4, 2)?;
    let mut gating: SegmentedReader<Tick> = segmented.reader();
    let mut follower: SegmentedFollower<Tick> = segmented.follower();
    segmented.append(&Tick { id: 2, price: 4.0 });
    assert_eq!(gating.next(), Some(&Tick { id: 2, price: 4.0 }));
    assert_eq!(follower.next()?, Some(Tick { id: 2, price: 4.0 }));
    let _ = Retention::KeepLast(3);
    let mut bounded = StageEngine::<Tick, Tick>::bounded(4, 2).add_stage(map(|t: &Tick| t.id));
    bounded.send(&Tick { id: 9, price: 0.0 });
    assert_eq!(bounded.receive(), 9);

    let err: RodaError = JournalStore::<Tick>::in_memory(0).unwrap_err();
    assert!(err.to_string().contains("capacity"));
    Ok(())
}

#[test]
fn member_crates_are_modules() {
    let _: Option<roda::core::RodaError> = None;
    let _: Option<roda::store::JournalStore<u64>> = None;
    let _: Option<roda::store::HeaderInfo> = None;
    let _ = roda::pipe::map(|x: &u64| *x + 1);
    let _ = roda::pipe::pipe![roda::pipe::filter(|_: &u64| true)];
    let _ = roda::JournalStore::<u64>::options().schema(1);
    let _: Option<roda::StoreKind> = None;
    let _: Option<roda::engine::StageEngine<u64, u64>> = None;
    let _ = roda::engine::WaitStrategy::Adaptive;
}

//! File-backed SegmentedJournal: directory layout, retention (KeepLast recycles in place,
//! KeepAll archives), reopen, locking, followers from the directory, Lagged, errors.
#![cfg(not(roda_loom))]
#![cfg(not(miri))]

use std::path::{Path, PathBuf};

use roda_store::{Retention, RodaError, SegmentedFollower, SegmentedJournal, StoreFile};

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn first_of(path: &Path) -> Option<u64> {
    StoreFile::open(path).unwrap().first_sequence()
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    (tmp, dir)
}

#[test]
fn keep_last_is_a_ring_of_files_recycled_in_place() {
    let (_tmp, dir) = temp();
    let mut journal =
        SegmentedJournal::<[u64; 2]>::create(&dir, 100, Retention::KeepLast(3)).unwrap();
    assert_eq!(journal.retention(), Some(Retention::KeepLast(3)));
    assert_eq!(journal.dir(), Some(dir.as_path()));
    // Three files from the start: segment 0 and two spares.
    assert_eq!(
        names(&dir),
        [
            "00000000000000000000.roda",
            "00000000000000000100.roda",
            "00000000000000000200.roda"
        ]
    );
    assert_eq!(first_of(&dir.join("00000000000000000000.roda")), Some(0));
    assert_eq!(first_of(&dir.join("00000000000000000100.roda")), None);
    let mut follower = journal.follower();
    for i in 0..1050u64 {
        assert_eq!(journal.try_append(&[i, !i]).unwrap(), i);
    }
    // Still three files, named for the segments they hold, headers agreeing.
    assert_eq!(
        names(&dir),
        [
            "00000000000000000800.roda",
            "00000000000000000900.roda",
            "00000000000000001000.roda"
        ]
    );
    for name in names(&dir) {
        let file = StoreFile::open(dir.join(&name)).unwrap();
        assert!(file.header().segment);
        assert_eq!(file.header().retention, 3);
        let first = file.first_sequence().unwrap();
        assert_eq!(name, format!("{first:020}.roda"));
        assert_eq!(file.published(), if first == 1000 { 50 } else { 100 });
        assert!(file.writer_alive());
        assert_eq!(file.record_bytes(0), None, "segments are read by followers");
    }
    assert_eq!(journal.oldest_retained(), 800);
    match follower.next() {
        Err(RodaError::Lagged { missed }) => assert_eq!(missed, 800),
        other => panic!("{other:?}"),
    }
    assert_eq!(follower.seek_to_oldest(), 800);
    let mut n = 800;
    let mut batch = vec![[0u64; 2]; 64];
    loop {
        let got = follower.next_batch(&mut batch).unwrap();
        if got == 0 {
            break;
        }
        for r in &batch[..got] {
            assert_eq!(*r, [n, !n]);
            n += 1;
        }
    }
    assert_eq!(n, 1050);
    drop(journal);
    let file = StoreFile::open(dir.join("00000000000000001000.roda")).unwrap();
    assert_eq!(file.writer_pid(), 0, "a clean close clears the pid");
}

#[test]
fn reopen_resumes_and_second_writer_is_refused() {
    let (_tmp, dir) = temp();
    let mut journal = SegmentedJournal::<u64>::create(&dir, 10, Retention::KeepLast(2)).unwrap();
    for i in 0..35 {
        journal.append(&i);
    }
    match SegmentedJournal::<u64>::open(&dir) {
        Err(RodaError::WriterActive { pid }) => assert_eq!(pid, std::process::id()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        SegmentedJournal::<u64>::create(&dir, 10, Retention::KeepLast(2)),
        Err(RodaError::WriterActive { .. })
    ));
    // A segment file cannot be taken over by a plain journal writer either.
    assert!(roda_store::JournalStore::<u64>::open(dir.join(format!("{:020}.roda", 30))).is_err());
    drop(journal);
    assert!(matches!(
        SegmentedJournal::<u64>::create(&dir, 10, Retention::KeepLast(2)),
        Err(RodaError::AlreadyExists { .. })
    ));
    let mut journal = SegmentedJournal::<u64>::open(&dir).unwrap();
    assert_eq!(journal.len(), 35);
    assert_eq!(journal.oldest_retained(), 20);
    let mut reader = journal.reader();
    assert_eq!(reader.get_index(), 20);
    assert_eq!(reader.next(), Some(&20));
    drop(reader);
    for i in 35..40 {
        assert_eq!(journal.append(&i), i);
    }
    // Reopen exactly at a segment end: the next append rolls.
    drop(journal);
    let mut journal = SegmentedJournal::<u64>::open(&dir).unwrap();
    assert_eq!(journal.len(), 40);
    assert_eq!(journal.append(&40), 40);
    let mut follower = journal.follower();
    assert_eq!(follower.position(), 30);
    let got: Vec<u64> = std::iter::from_fn(|| follower.next().unwrap()).collect();
    assert_eq!(got, (30..41).collect::<Vec<_>>());
}

#[test]
fn open_checks_type_retention_and_directory() {
    let (_tmp, dir) = temp();
    drop(
        SegmentedJournal::<u64>::options()
            .schema(5)
            .create(&dir, 10)
            .unwrap(),
    );
    assert!(matches!(
        SegmentedJournal::<u32>::options().schema(5).open(&dir),
        Err(RodaError::LayoutMismatch {
            field: "record_size",
            ..
        })
    ));
    assert!(matches!(
        SegmentedJournal::<u64>::open(&dir),
        Err(RodaError::LayoutMismatch {
            field: "schema",
            ..
        })
    ));
    assert!(matches!(
        SegmentedJournal::<u64>::options()
            .schema(5)
            .retention(Retention::KeepAll)
            .open(&dir),
        Err(RodaError::LayoutMismatch {
            field: "retention",
            expected: 0,
            found: 4
        })
    ));
    let journal = SegmentedJournal::<u64>::options()
        .schema(5)
        .open(&dir)
        .unwrap();
    assert_eq!(journal.retention(), Some(Retention::KeepLast(4)));
    drop(journal);
    let (_tmp2, empty) = temp();
    std::fs::create_dir(&empty).unwrap();
    match SegmentedJournal::<u64>::open(&empty) {
        Err(e @ RodaError::Io { .. }) => assert!(e.to_string().contains("create"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        SegmentedFollower::<u64>::open(&empty),
        Err(RodaError::Io { .. })
    ));
    assert!(matches!(
        SegmentedJournal::<u64>::create(&empty, 10, Retention::KeepLast(1)),
        Err(RodaError::InvalidCapacity { .. })
    ));
    assert!(matches!(
        SegmentedJournal::<u64>::create(&empty, 0, Retention::KeepLast(2)),
        Err(RodaError::InvalidCapacity { .. })
    ));
    // open_or_create creates once, then opens.
    let mut journal = SegmentedJournal::<u64>::options()
        .open_or_create(&empty, 8)
        .unwrap();
    journal.append(&1);
    journal.flush().unwrap();
    drop(journal);
    assert_eq!(
        SegmentedJournal::<u64>::options()
            .open_or_create(&empty, 8)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn keep_all_archives_every_segment_and_followers_replay_it() {
    let (_tmp, dir) = temp();
    let mut journal = SegmentedJournal::<[u64; 3]>::create(&dir, 50, Retention::KeepAll).unwrap();
    let mut reader = journal.reader();
    let mut follower = journal.follower();
    let mut seen = 0u64;
    let mut lagged = 0;
    for i in 0..1_000u64 {
        while journal.try_append(&[i, i * 2, !i]).is_err() {
            while let Some(r) = reader.next() {
                assert_eq!(*r, [seen, seen * 2, !seen]);
                seen += 1;
            }
        }
        if i % 7 == 0 {
            // A slow follower: it reads across remapped segments or learns it lagged.
            match follower.next() {
                Ok(Some(r)) => assert_eq!((r[0] * 2, !r[0]), (r[1], r[2])),
                Ok(None) => {}
                Err(RodaError::Lagged { .. }) => {
                    lagged += 1;
                    follower.seek_to_oldest();
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert!(lagged > 0);
    // Every segment on disk, each self-describing.
    let files = names(&dir);
    assert_eq!(files.len(), 20);
    for (k, name) in files.iter().enumerate() {
        let file = StoreFile::open(dir.join(name)).unwrap();
        assert_eq!(file.first_sequence(), Some(50 * k as u64));
        assert_eq!(file.header().retention, 0);
        assert_eq!(file.published(), 50);
        // Only the mapped window still names this process as its writer.
        if k < 20 - journal.segments() {
            assert_eq!(file.writer_pid(), 0, "{name}");
        }
    }
    // A follower of the directory replays the archive from the start.
    let mut replay = SegmentedFollower::<[u64; 3]>::open(&dir).unwrap();
    assert_eq!(replay.position(), 0);
    assert_eq!(replay.published(), 1000);
    for i in 0..1000u64 {
        assert_eq!(replay.next().unwrap(), Some([i, i * 2, !i]));
    }
    assert_eq!(replay.next().unwrap(), None);
    journal.append(&[1000, 2000, !1000]);
    assert_eq!(replay.next().unwrap(), Some([1000, 2000, !1000]));
    drop(reader);
    drop(journal);
    let mut journal = SegmentedJournal::<[u64; 3]>::open(&dir).unwrap();
    assert_eq!(journal.len(), 1001);
    assert_eq!(journal.retention(), Some(Retention::KeepAll));
    assert_eq!(
        journal.oldest_retained(),
        850,
        "the mapped window after reopen"
    );
    for i in 1001..1200u64 {
        journal.append(&[i, i * 2, !i]);
    }
    for i in 1001..1200u64 {
        assert_eq!(replay.next().unwrap(), Some([i, i * 2, !i]));
    }
    assert_eq!(names(&dir).len(), 24);
}

#[test]
fn a_directory_follower_reports_lag_and_catches_up() {
    let (_tmp, dir) = temp();
    let mut journal = SegmentedJournal::<u64>::create(&dir, 10, Retention::KeepLast(3)).unwrap();
    for i in 0..5 {
        journal.append(&i);
    }
    let mut follower = SegmentedFollower::<u64>::open(&dir).unwrap();
    assert_eq!((follower.position(), follower.published()), (0, 5));
    let mut out = [0u64; 100];
    assert_eq!(follower.next_batch(&mut out).unwrap(), 5);
    assert_eq!(follower.next_batch(&mut out).unwrap(), 0);
    for i in 5..100 {
        journal.append(&i);
    }
    // The follower's segment (0..10) was recycled twice over.
    match follower.next() {
        Err(RodaError::Lagged { missed }) => assert_eq!(missed, 70 - 5),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        follower.position(),
        5,
        "a lagged read does not move the cursor"
    );
    assert_eq!(follower.seek_to_oldest(), 70);
    let mut got = Vec::new();
    while let Some(x) = follower.next().unwrap() {
        got.push(x);
    }
    assert_eq!(got, (70..100).collect::<Vec<_>>());
    // Waiting at a segment end, then across the roll.
    journal.append(&100);
    assert_eq!(follower.next().unwrap(), Some(100));
    follower.seek(1_000);
    assert_eq!(follower.next().unwrap(), None);
}

fn thread_minor_faults() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .map(|u| u.minor_page_faults())
        .unwrap_or(0)
}

#[test]
fn keep_last_steady_state_takes_no_page_faults() {
    const SEGMENT: usize = 16 * 1024;
    let (_tmp, dir) = temp();
    let mut journal =
        SegmentedJournal::<[u64; 3]>::create(&dir, SEGMENT, Retention::KeepLast(3)).unwrap();
    // Warm-up: every file used once.
    for i in 0..3 * SEGMENT as u64 + 1 {
        journal.append(&[i, i, i]);
    }
    let before = thread_minor_faults();
    for i in 0..20 * SEGMENT as u64 {
        journal.append(&[i, i, i]);
    }
    let faults = thread_minor_faults() - before;
    // 20 rolls (a rename each); no page of the ring faults again.
    assert!(
        faults < 100,
        "{faults} minor page faults over 20 recycled segments"
    );
}

#[test]
fn segments_share_the_directorys_random_journal_id() {
    let (_tmp, dir) = temp();
    let mut journal = SegmentedJournal::<u64>::create(&dir, 4, Retention::KeepAll).unwrap();
    let id = journal.journal_id();
    assert_ne!(id, 0);
    for i in 0..30u64 {
        journal.append(&i);
    }
    drop(journal);
    // Reopened, it keeps the id, and the segments it creates carry it too.
    let mut journal = SegmentedJournal::<u64>::open(&dir).unwrap();
    assert_eq!(journal.journal_id(), id);
    for i in 30..50u64 {
        journal.append(&i);
    }
    drop(journal);
    let ids: Vec<u64> = names(&dir)
        .iter()
        .filter(|n| n.ends_with(".roda"))
        .map(|n| StoreFile::open(dir.join(n)).unwrap().header().journal_id)
        .collect();
    assert!(ids.len() >= 12, "{ids:?}");
    assert!(ids.iter().all(|&x| x == id), "{ids:?}");
    // Another directory, another id.
    let (_tmp2, other) = temp();
    let journal = SegmentedJournal::<u64>::create(&other, 4, Retention::KeepLast(2)).unwrap();
    assert_ne!(journal.journal_id(), id);
}

#[test]
fn a_journal_created_at_a_first_sequence_keeps_it_through_rolls_and_reopens() {
    for retention in [Retention::KeepLast(3), Retention::KeepAll] {
        let (_tmp, dir) = temp();
        let mut journal = SegmentedJournal::<u64>::options()
            .retention(retention)
            .create_at(&dir, 10, 1_000)
            .unwrap();
        assert_eq!((journal.len(), journal.oldest_retained()), (1_000, 1_000));
        let mut follower = journal.follower();
        assert_eq!(follower.position(), 1_000);
        for i in 1_000..1_025u64 {
            assert_eq!(journal.append(&(i * 3)), i);
        }
        let mut got = vec![0u64; 64];
        let mut seen = Vec::new();
        loop {
            let n = follower.next_batch(&mut got).unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&got[..n]);
        }
        assert_eq!(seen, (1_000..1_025u64).map(|i| i * 3).collect::<Vec<_>>());
        drop(journal);

        // From the directory, in another process: starts at the first sequence.
        let mut follower = SegmentedFollower::<u64>::open(&dir).unwrap();
        assert_eq!(follower.position(), 1_000, "{retention:?}");
        assert_eq!(follower.next().unwrap(), Some(3_000));
        // Reopened, the writer resumes after the last record.
        let mut journal = SegmentedJournal::<u64>::open(&dir).unwrap();
        assert_eq!(journal.len(), 1_025);
        assert_eq!(journal.oldest_retained(), 1_000);
        for i in 1_025..1_100u64 {
            assert_eq!(journal.append(&(i * 3)), i);
        }
        drop(journal);
        let mut follower = SegmentedFollower::<u64>::open(&dir).unwrap();
        let oldest = follower.position();
        match retention {
            Retention::KeepAll => assert_eq!(oldest, 1_000),
            _ => assert_eq!(oldest, 1_070),
        }
        for i in oldest..1_100 {
            assert_eq!(follower.next().unwrap(), Some(i * 3));
        }
        assert_eq!(follower.next().unwrap(), None);
    }
    // Not a multiple of the segment size: refused, nothing created.
    let (_tmp, dir) = temp();
    let err = SegmentedJournal::<u64>::options()
        .create_at(&dir, 10, 1_005)
        .unwrap_err();
    assert!(matches!(err, RodaError::InvalidCapacity { .. }), "{err}");
}

/// A follower of a `KeepLast` directory that finds its segment's file being recycled
/// (first sequence `u64::MAX`, the recycle's first step) while a later segment is in
/// another file reports that it lagged: the segment is gone. It used to report that
/// nothing was published yet, mid-segment, until the recycle finished (seen as a
/// follower stopping inside a batch's segment part, under load).
#[test]
fn a_directory_follower_that_finds_its_segment_mid_recycle_lags() {
    use std::os::unix::fs::FileExt;
    let (_tmp, dir) = temp();
    let mut journal = SegmentedJournal::<u64>::create(&dir, 4, Retention::KeepLast(2)).unwrap();
    for i in 0..8 {
        journal.append(&i);
    }
    let mut follower = SegmentedFollower::<u64>::open(&dir).unwrap();
    assert_eq!(follower.next().unwrap(), Some(0));
    // The writer's next append recycles segment 0's file for segment 8: its first step
    // (the first sequence at offset 88 of the header) as another process sees it.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("00000000000000000000.roda"))
        .unwrap();
    file.write_all_at(&u64::MAX.to_ne_bytes(), 88).unwrap();
    match follower.next() {
        Err(RodaError::Lagged { .. }) => {}
        other => panic!("a follower inside a segment being recycled got {other:?}"),
    }
    // A segment not written yet, whose file is being set up, is still just not there.
    let mut ahead = SegmentedFollower::<u64>::open(&dir).unwrap();
    ahead.seek(9);
    assert_eq!(ahead.next().unwrap(), None);
    drop(journal);
}

/// A `KeepAll` writer with a pre-toucher (which moves each next file into its ring slot
/// ahead of the roll) beside a gating reader that sometimes falls behind (so the
/// pre-toucher must leave a slot alone until the reader has released it) and an
/// in-process follower (which must never return a record of a file that replaced its
/// segment): the reader sees every record in order, the follower only true records.
#[test]
fn keep_all_with_a_pretoucher_keeps_gating_readers_and_followers_whole() {
    const S: usize = 1024;
    const N: u64 = 100_000;
    let (_tmp, dir) = temp();
    let mut journal = SegmentedJournal::<[u64; 2]>::options()
        .retention(Retention::KeepAll)
        .pretouch(64 << 10)
        .create(&dir, S)
        .unwrap();
    let mut reader = journal.reader();
    let mut follower = journal.follower();
    let record = |i: u64| [i, i.wrapping_mul(0x9E37_79B9_7F4A_7C15)];
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut next = 0u64;
            while next < N {
                match reader.next() {
                    Some(r) => {
                        assert_eq!(*r, record(next), "gating reader at {next}");
                        next += 1;
                        // Falls behind now and then, holding the writer's ring.
                        if next % 5_000 == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(2));
                        }
                    }
                    None => std::thread::yield_now(),
                }
            }
        });
        scope.spawn(move || {
            let (mut read, mut lags) = (0u64, 0u64);
            while follower.position() < N {
                match follower.next() {
                    Ok(Some(r)) => {
                        assert_eq!(r, record(follower.position() - 1), "follower");
                        read += 1;
                    }
                    Ok(None) => std::thread::yield_now(),
                    Err(RodaError::Lagged { .. }) => {
                        lags += 1;
                        follower.seek_to_oldest();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(read > 0, "the follower read nothing ({lags} lags)");
        });
        for i in 0..N {
            while journal.try_append(&record(i)).is_err() {
                std::thread::yield_now();
            }
            // Paced, so the pre-toucher usually finds the next roll in time.
            if i % 256 == 0 {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
        journal.flush().unwrap();
        drop(journal);
    });
    // Every record is in the archive.
    let mut replay = SegmentedFollower::<[u64; 2]>::open(&dir).unwrap();
    for i in 0..N {
        assert_eq!(replay.next().unwrap(), Some(record(i)));
    }
}

//! The log store: append, read, truncate, purge, metadata, and that all of it survives a
//! reopen.

use zk_storage::LogStore;

fn entry(index: u64) -> (u64, Vec<u8>) {
    (index, format!("entry-{index}").into_bytes())
}

#[test]
fn append_read_truncate_purge() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.last_entry().unwrap(), None);
    assert_eq!(log.first_index().unwrap(), None);
    assert_eq!(log.entries(0..100).unwrap(), vec![]);

    log.append(&(1..=10).map(entry).collect::<Vec<_>>())
        .unwrap();
    log.append(&[]).unwrap();
    assert_eq!(log.first_index().unwrap(), Some(1));
    assert_eq!(log.last_entry().unwrap(), Some(entry(10)));
    assert_eq!(
        log.entries(3..6).unwrap(),
        (3..6).map(entry).collect::<Vec<_>>()
    );
    assert_eq!(log.entries(9..100).unwrap(), vec![entry(9), entry(10)]);
    assert_eq!(log.entries(5..5).unwrap(), vec![]);

    // Big-endian keys keep index order past a byte boundary.
    log.append(&(11..=300).map(entry).collect::<Vec<_>>())
        .unwrap();
    let all = log.entries(1..301).unwrap();
    assert_eq!(all.len(), 300);
    assert!(all.windows(2).all(|w| w[0].0 + 1 == w[1].0));

    // Overwrite after a truncate, as a follower does on a conflict.
    log.truncate_after(Some(250)).unwrap();
    assert_eq!(log.last_entry().unwrap(), Some(entry(250)));
    log.append(&[(251, b"new".to_vec())]).unwrap();
    assert_eq!(log.last_entry().unwrap(), Some((251, b"new".to_vec())));

    log.purge_upto(100, &[(b"last_purged".as_slice(), b"100".as_slice())])
        .unwrap();
    assert_eq!(log.first_index().unwrap(), Some(101));
    assert_eq!(log.entries(1..103).unwrap(), vec![entry(101), entry(102)]);
    assert_eq!(log.get_meta(b"last_purged").unwrap(), Some(b"100".to_vec()));

    drop(log);
    let log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.first_index().unwrap(), Some(101));
    assert_eq!(log.last_entry().unwrap(), Some((251, b"new".to_vec())));
    assert_eq!(log.entries(101..252).unwrap().len(), 151);

    log.truncate_after(None).unwrap();
    assert_eq!(log.last_entry().unwrap(), None);
    assert_eq!(log.get_meta(b"last_purged").unwrap(), Some(b"100".to_vec()));
    log.truncate_after(Some(u64::MAX)).unwrap();
}

#[test]
fn meta_round_trips_through_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.get_meta(b"vote").unwrap(), None);
        log.put_meta(b"vote", b"term 3 for node 1").unwrap();
        log.put_meta(b"vote", b"term 4 for node 1").unwrap();
        log.append_with_meta(&[(1, b"one".to_vec())], &[(b"committed", b"7")])
            .unwrap();
        assert_eq!(
            log.get_meta(b"vote").unwrap(),
            Some(b"term 4 for node 1".to_vec())
        );
    }
    let log = LogStore::open(dir.path()).unwrap();
    assert_eq!(
        log.get_meta(b"vote").unwrap(),
        Some(b"term 4 for node 1".to_vec())
    );
    assert_eq!(log.get_meta(b"committed").unwrap(), Some(b"7".to_vec()));
    assert_eq!(log.entries(1..2).unwrap(), vec![(1, b"one".to_vec())]);
}

#[test]
fn a_second_open_of_the_same_dir_is_refused_as_busy() {
    let dir = tempfile::tempdir().unwrap();
    let _log = LogStore::open(dir.path()).unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    assert!(err.is_lock_busy(), "{err}");
}

fn seg_files(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".seg") && name.starts_with(prefix)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn index_zero_is_an_entry_and_purging_it_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogStore::open(dir.path()).unwrap();
        log.append(&(0..3).map(entry).collect::<Vec<_>>()).unwrap();
    }
    let log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.first_index().unwrap(), Some(0));
    log.purge_upto(0, &[]).unwrap();
    drop(log);
    let log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.first_index().unwrap(), Some(1));
    assert_eq!(log.entries(0..10).unwrap(), vec![entry(1), entry(2)]);
}

#[test]
fn appends_overwrite_from_their_first_index_and_refuse_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogStore::open(dir.path()).unwrap();
    log.append(&(1..=5).map(entry).collect::<Vec<_>>()).unwrap();
    log.append(&[(3, b"three".to_vec())]).unwrap();
    assert_eq!(log.last_entry().unwrap(), Some((3, b"three".to_vec())));
    assert!(log.append(&[entry(9)]).is_err());
    assert!(log.append(&[entry(4), entry(6)]).is_err());
    assert_eq!(log.last_entry().unwrap(), Some((3, b"three".to_vec())));
    drop(log);
    let log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.entries(0..10).unwrap().len(), 3);
    assert_eq!(log.last_entry().unwrap(), Some((3, b"three".to_vec())));
}

#[test]
fn segments_rotate_purged_ones_are_reused_and_all_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big = |i: u64| (i, vec![i as u8; 1000]);
    {
        let log = LogStore::open_with_segment_bytes(dir.path(), 8 << 10).unwrap();
        for i in 1..=100 {
            log.append(&[big(i)]).unwrap();
        }
        assert!(seg_files(dir.path(), "0").len() >= 10);
        log.purge_upto(60, &[]).unwrap();
        assert_eq!(seg_files(dir.path(), "spare-").len(), 2);
        // The next segments are the spares, renamed, with their old records still in them.
        for i in 101..=140 {
            log.append(&[big(i)]).unwrap();
        }
        assert_eq!(
            log.entries(0..200).unwrap(),
            (61..=140).map(big).collect::<Vec<_>>()
        );
    }
    let log = LogStore::open_with_segment_bytes(dir.path(), 8 << 10).unwrap();
    assert_eq!(
        log.entries(0..200).unwrap(),
        (61..=140).map(big).collect::<Vec<_>>()
    );
    // A batch larger than a segment gets one of its own.
    let batch: Vec<_> = (141..=160).map(big).collect();
    log.append(&batch).unwrap();
    drop(log);
    let log = LogStore::open_with_segment_bytes(dir.path(), 8 << 10).unwrap();
    assert_eq!(log.entries(141..200).unwrap(), batch);
}

#[test]
fn a_torn_tail_is_cut_and_nothing_after_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogStore::open(dir.path()).unwrap();
        log.append(&(1..=3).map(entry).collect::<Vec<_>>()).unwrap();
        log.append(&(4..=5).map(entry).collect::<Vec<_>>()).unwrap();
    }
    // Damage entry 4's record (its payload's last byte), as a torn write would; entry 5
    // after it is intact.
    let seg = seg_files(dir.path(), "0").pop().unwrap();
    let data = std::fs::read(&seg).unwrap();
    let needle = b"entry-4";
    let at = data
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        + needle.len()
        - 1;
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"X", at as u64).unwrap();
    drop(f);
    {
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_entry().unwrap(), Some(entry(3)));
        // A new entry 4 as long as the old one ends where entry 5's record began.
        log.append(&[(4, b"ENTRY-4".to_vec())]).unwrap();
    }
    let log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.last_entry().unwrap(), Some((4, b"ENTRY-4".to_vec())));
}

#[test]
fn metadata_written_with_appends_survives_truncation_purge_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogStore::open(dir.path()).unwrap();
        log.append(&(1..=4).map(entry).collect::<Vec<_>>()).unwrap();
        log.append_with_meta(&[entry(5), entry(6)], &[(b"committed", b"6")])
            .unwrap();
        log.truncate_after(Some(4)).unwrap();
        assert_eq!(log.get_meta(b"committed").unwrap(), Some(b"6".to_vec()));
    }
    {
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.get_meta(b"committed").unwrap(), Some(b"6".to_vec()));
        assert_eq!(log.last_entry().unwrap(), Some(entry(4)));
        log.put_meta(b"vote", b"v1").unwrap();
        log.append_with_meta(&[entry(5)], &[(b"committed", b"7")])
            .unwrap();
        log.purge_upto(2, &[(b"committed", b"8")]).unwrap();
        log.append_with_meta(&[entry(6)], &[(b"vote", b"v2")])
            .unwrap();
    }
    let log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.get_meta(b"committed").unwrap(), Some(b"8".to_vec()));
    assert_eq!(log.get_meta(b"vote").unwrap(), Some(b"v2".to_vec()));
    assert_eq!(
        log.entries(0..10).unwrap(),
        (3..=6).map(entry).collect::<Vec<_>>()
    );
}

#[test]
fn a_rocksdb_log_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("CURRENT"), "MANIFEST-000001\n").unwrap();
    let err = LogStore::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("RocksDB"), "{err}");
}

mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use zk_storage::LogStore;

    #[derive(Debug, Clone)]
    enum Op {
        Append { count: u8, len: u16 },
        Overwrite { back: u8, count: u8 },
        Truncate { back: u8 },
        Purge { ahead: u8 },
        Meta { key: u8, with_append: bool },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..8, 0u16..600).prop_map(|(count, len)| Op::Append { count, len }),
            1 => (0u8..6, 1u8..4).prop_map(|(back, count)| Op::Overwrite { back, count }),
            1 => (0u8..6).prop_map(|back| Op::Truncate { back }),
            1 => (0u8..8).prop_map(|ahead| Op::Purge { ahead }),
            1 => (0u8..3, any::<bool>()).prop_map(|(key, with_append)| Op::Meta { key, with_append }),
            1 => Just(Op::Reopen),
        ]
    }

    fn value(index: u64, tag: u64, len: u16) -> Vec<u8> {
        let mut v = format!("{index}/{tag}/").into_bytes();
        v.resize(v.len() + len as usize, (index ^ tag) as u8);
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any sequence of appends, overwrites, truncations, purges, metadata writes and
        /// reopens leaves the store answering as a plain map does.
        #[test]
        fn the_store_behaves_as_a_map_of_entries(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let open = || LogStore::open_with_segment_bytes(dir.path(), 4 << 10).unwrap();
            let mut log = open();
            let mut entries: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
            let mut meta: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            // The next index to append: entries are contiguous from the purge floor.
            let mut next = 1u64;
            let mut tag = 0u64;
            for op in ops {
                tag += 1;
                match op {
                    Op::Append { count, len } => {
                        let batch: Vec<_> = (next..next + u64::from(count))
                            .map(|i| (i, value(i, tag, len)))
                            .collect();
                        log.append(&batch).unwrap();
                        next += u64::from(count);
                        entries.extend(batch);
                    }
                    Op::Overwrite { back, count } => {
                        let Some(&first) = entries.keys().next() else { continue };
                        let from = next.saturating_sub(u64::from(back)).max(first);
                        let batch: Vec<_> = (from..from + u64::from(count))
                            .map(|i| (i, value(i, tag, 10)))
                            .collect();
                        log.append(&batch).unwrap();
                        entries.retain(|i, _| *i < from);
                        next = from + u64::from(count);
                        entries.extend(batch);
                    }
                    Op::Truncate { back } => {
                        let Some(&first) = entries.keys().next() else { continue };
                        let keep_to = next.saturating_sub(1 + u64::from(back)).max(first);
                        log.truncate_after(Some(keep_to)).unwrap();
                        entries.retain(|i, _| *i <= keep_to);
                        next = keep_to + 1;
                    }
                    Op::Purge { ahead } => {
                        let Some(&first) = entries.keys().next() else { continue };
                        let upto = first + u64::from(ahead);
                        log.purge_upto(upto, &[(b"purged".as_slice(), upto.to_string().as_bytes())]).unwrap();
                        meta.insert(b"purged".to_vec(), upto.to_string().into_bytes());
                        entries.retain(|i, _| *i > upto);
                        next = next.max(upto + 1);
                    }
                    Op::Meta { key, with_append } => {
                        let k = vec![b'k', key];
                        let v = tag.to_string().into_bytes();
                        if with_append {
                            let batch = [(next, value(next, tag, 3))];
                            log.append_with_meta(&batch, &[(&k, &v)]).unwrap();
                            entries.insert(next, batch[0].1.clone());
                            next += 1;
                        } else {
                            log.put_meta(&k, &v).unwrap();
                        }
                        meta.insert(k, v);
                    }
                    Op::Reopen => {
                        drop(log);
                        log = open();
                    }
                }
                let got = log.entries(0..u64::MAX).unwrap();
                let want: Vec<_> = entries.iter().map(|(i, v)| (*i, v.clone())).collect();
                prop_assert_eq!(&got, &want);
                prop_assert_eq!(log.first_index().unwrap(), entries.keys().next().copied());
                prop_assert_eq!(
                    log.last_entry().unwrap(),
                    entries.iter().next_back().map(|(i, v)| (*i, v.clone()))
                );
                for (k, v) in &meta {
                    let got = log.get_meta(k).unwrap();
                    prop_assert_eq!(got.as_ref(), Some(v));
                }
            }
        }
    }
}

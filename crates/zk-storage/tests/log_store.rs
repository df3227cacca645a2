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

use super::*;
use crate::index::Protocol;

fn blob(n: u8) -> BlobInfo {
    BlobInfo {
        id: ContentId([n; 32]),
        sha256: [n.wrapping_add(100); 32],
        size: u64::from(n),
    }
}

fn sha(info: &BlobInfo) -> Digest {
    Digest::Sha256(info.sha256)
}

fn key(name: &str) -> EntryKey {
    EntryKey {
        protocol: Protocol::Oci,
        namespace: "team".into(),
        name: name.into(),
    }
}

fn record(name: &str, size: u64) -> EntryRecord {
    EntryRecord {
        id: 7,
        key: key(name),
        content: ContentId([1; 32]),
        size,
        created: 0,
        last_used: 0,
        pins: vec![ContentId([2; 32])],
        meta: Vec::new(),
        children: Vec::new(),
    }
}

fn hearing() -> Memo {
    let m = Memo::new(1 << 20);
    m.hearing();
    m
}

#[test]
fn payloads_parse_into_changes_and_nothing_else() {
    let id = ContentId([0xab; 32]);
    let hex_id = "ab".repeat(32);
    assert_eq!(Change::parse(&format!("b{hex_id}")), Some(Change::Blob(id)));
    assert_eq!(
        Change::parse(&format!("asha256:{hex_id}")),
        Some(Change::Alias(Digest::Sha256([0xab; 32])))
    );
    assert_eq!(
        Change::parse(&format!("l{hex_id}team:x/ü")),
        Some(Change::Link(id, "team:x/ü".into()))
    );
    // The scope's length is in bytes, so names with ':' and non-ASCII split
    // where the database put the boundary.
    assert_eq!(
        Change::parse("n6:a:b/üv1:x"),
        Some(Change::Name("a:b/ü".into(), "v1:x".into()))
    );
    assert_eq!(
        Change::parse("eoci:4:teamapp:v1"),
        Some(Change::Entry(key("app:v1")))
    );
    for bad in [
        "",
        "x",
        "b12",
        &format!("b{}", "zz".repeat(32)),
        "l00",
        "asha256:12",
        "n9:short",
        "n3:ü",
        "nx:abc",
        "eoci:4team",
        "enope:4:teamapp",
    ] {
        assert_eq!(Change::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn a_deaf_memo_answers_nothing_and_remembers_nothing() {
    let m = Memo::new(1 << 20);
    let t = m.ticket();
    m.remember_entry(t, &key("a"), Some(&record("a", 1)));
    m.hearing();
    assert_eq!(m.entry(&key("a")).found(), None);

    let t = m.ticket();
    m.remember_entry(t, &key("a"), Some(&record("a", 1)));
    assert_eq!(m.entry(&key("a")).found(), Some(record("a", 1)));
    m.deaf();
    assert_eq!(m.entry(&key("a")).found(), None);
    // Hearing again starts from nothing: changes may have been missed.
    m.hearing();
    assert_eq!(m.entry(&key("a")).found(), None);
}

#[test]
fn an_answer_is_not_remembered_when_a_change_to_it_came_while_it_was_asked() {
    let m = hearing();
    let one = blob(1);
    let t = m.ticket();
    m.forget(Some(&Change::Entry(key("a"))));
    m.forget(Some(&Change::Name("team/a".into(), "v1".into())));
    m.forget(Some(&Change::Alias(sha(&one))));
    m.remember_entry(t, &key("a"), Some(&record("a", 1)));
    m.remember_name(t, "team/a", "v1", None);
    m.remember_blob(t, &sha(&one), None, Some("team/a"));
    assert_eq!(m.entry(&key("a")), Known::Unknown);
    assert_eq!(m.name("team/a", "v1"), Known::Unknown);
    assert_eq!(m.blob(&sha(&one), Some("team/a")), Known::Unknown);

    // A blob's record or link changed, asked by its BLAKE3 name or found
    // under another digest.
    let t = m.ticket();
    m.forget(Some(&Change::Link(one.id, "team/b".into())));
    m.remember_blob(t, &sha(&one), Some(&one), Some("team/a"));
    m.remember_blob(t, &Digest::Blake3(one.id.0), None, None);
    assert_eq!(m.blob(&sha(&one), Some("team/a")), Known::Unknown);
    assert_eq!(m.blob(&Digest::Blake3(one.id.0), None), Known::Unknown);
}

#[test]
fn changes_to_other_things_do_not_keep_an_answer_from_being_remembered() {
    let m = hearing();
    let (one, two) = (blob(1), blob(2));
    let t = m.ticket();
    m.forget(Some(&Change::Entry(key("other"))));
    m.forget(Some(&Change::Name("team/a".into(), "v2".into())));
    m.forget(Some(&Change::Blob(two.id)));
    m.forget(Some(&Change::Alias(sha(&two))));
    m.remember_entry(t, &key("a"), Some(&record("a", 1)));
    m.remember_name(t, "team/a", "v1", Some(&key("a")));
    m.remember_blob(t, &sha(&one), Some(&one), Some("team/a"));
    assert_eq!(m.entry(&key("a")), Known::Found(record("a", 1)));
    assert_eq!(m.name("team/a", "v1"), Known::Found(key("a")));
    assert_eq!(m.blob(&sha(&one), Some("team/a")), Known::Found(one));

    // Too many changes since to check them all, or a gap in hearing.
    let t = m.ticket();
    for i in 0..=RECENT {
        m.forget(Some(&Change::Entry(key(&format!("e{i}")))));
    }
    m.remember_entry(t, &key("b"), None);
    assert_eq!(m.entry(&key("b")), Known::Unknown);
    let t = m.ticket();
    m.deaf();
    m.hearing();
    m.remember_entry(t, &key("b"), None);
    assert_eq!(m.entry(&key("b")), Known::Unknown);
}

#[test]
fn each_change_forgets_what_it_makes_wrong() {
    let m = hearing();
    let (one, two) = (blob(1), blob(2));
    let t = m.ticket();
    m.remember_blob(t, &sha(&one), Some(&one), Some("team/a"));
    m.remember_blob(t, &sha(&one), Some(&one), Some("team/b"));
    m.remember_blob(t, &sha(&two), Some(&two), None);
    m.remember_name(t, "team/a", "v1", Some(&key("m1")));
    m.remember_name(t, "team/a", "v2", Some(&key("m2")));
    m.remember_entry(t, &key("m1"), Some(&record("m1", 1)));
    m.remember_entry(t, &key("m2"), Some(&record("m2", 2)));

    assert_eq!(m.blob(&sha(&one), Some("team/a")).found(), Some(one));
    assert_eq!(m.blob(&Digest::Blake3(one.id.0), None).found(), Some(one));
    assert_eq!(
        m.blob(&sha(&two), Some("team/a")).found(),
        None,
        "never seen there"
    );
    assert_eq!(m.blob(&sha(&two), None).found(), Some(two));

    m.forget(Some(&Change::Link(one.id, "team/a".into())));
    assert_eq!(m.blob(&sha(&one), Some("team/a")).found(), None);
    assert_eq!(m.blob(&sha(&one), Some("team/b")).found(), Some(one));
    m.forget(Some(&Change::Blob(one.id)));
    assert_eq!(m.blob(&sha(&one), Some("team/b")).found(), None);
    assert_eq!(m.blob(&sha(&one), None).found(), None);

    m.forget(Some(&Change::Name("team/a".into(), "v1".into())));
    assert_eq!(m.name("team/a", "v1").found(), None);
    assert_eq!(m.name("team/a", "v2").found(), Some(key("m2")));
    m.forget(Some(&Change::Entry(key("m1"))));
    assert_eq!(m.entry(&key("m1")).found(), None);
    assert_eq!(m.entry(&key("m2")).found(), Some(record("m2", 2)));

    // A change not understood forgets everything.
    m.forget(None);
    assert_eq!(m.name("team/a", "v2").found(), None);
    assert_eq!(m.entry(&key("m2")).found(), None);
    assert_eq!(m.blob(&sha(&two), None).found(), None);
}

#[test]
fn a_full_memo_drops_what_was_not_used_lately() {
    // A fifth of 16 KiB per kind: entries of ~200 bytes, about 30 fit.
    let m = Memo::new(16 << 10);
    m.hearing();
    let t = m.ticket();
    m.remember_entry(t, &key("kept"), Some(&record("kept", 0)));
    for i in 0..1000 {
        let r = record(&format!("e{i}"), i);
        m.remember_entry(t, &r.key, Some(&r));
        // Used all along, so it stays young.
        assert!(m.entry(&key("kept")).found().is_some(), "dropped at {i}");
    }
    assert_eq!(m.entry(&key("e0")).found(), None);
    assert!(m.entry(&key("e999")).found().is_some());
    let inner = m.inner.lock();
    assert!(inner.entries.len() < 100);
}

#[test]
fn a_memo_of_size_zero_remembers_nothing() {
    let m = Memo::new(0);
    m.hearing();
    let t = m.ticket();
    m.remember_entry(t, &key("a"), Some(&record("a", 1)));
    assert_eq!(m.entry(&key("a")).found(), None);
}

#[test]
fn a_miss_is_known_until_what_was_missing_is_created() {
    let m = hearing();
    let one = blob(1);
    let b3 = Digest::Blake3(one.id.0);
    let t = m.ticket();
    m.remember_blob(t, &sha(&one), None, Some("team/a"));
    m.remember_blob(t, &b3, None, None);
    m.remember_name(t, "team/a", "v1", None);
    m.remember_entry(t, &key("m1"), None);
    assert_eq!(m.blob(&sha(&one), Some("team/a")), Known::Absent);
    assert_eq!(
        m.blob(&sha(&one), Some("team/b")),
        Known::Unknown,
        "asked there only"
    );
    assert_eq!(m.blob(&sha(&one), None), Known::Unknown);
    assert_eq!(m.blob(&b3, None), Known::Absent);
    assert_eq!(m.name("team/a", "v1"), Known::Absent);
    assert_eq!(m.entry(&key("m1")), Known::Absent);

    // A link of the blob comes with its other digests; each ends its miss.
    m.forget(Some(&Change::Link(one.id, "team/a".into())));
    assert_eq!(m.blob(&b3, None), Known::Unknown);
    assert_eq!(m.blob(&sha(&one), Some("team/a")), Known::Absent);
    m.forget(Some(&Change::Alias(sha(&one))));
    assert_eq!(m.blob(&sha(&one), Some("team/a")), Known::Unknown);

    m.forget(Some(&Change::Name("team/a".into(), "v2".into())));
    assert_eq!(m.name("team/a", "v1"), Known::Absent, "another name");
    m.forget(Some(&Change::Name("team/a".into(), "v1".into())));
    assert_eq!(m.name("team/a", "v1"), Known::Unknown);
    m.forget(Some(&Change::Entry(key("m1"))));
    assert_eq!(m.entry(&key("m1")), Known::Unknown);

    // A blob recorded ends a miss by its BLAKE3 name.
    let t = m.ticket();
    m.remember_blob(t, &b3, None, None);
    m.forget(Some(&Change::Blob(one.id)));
    assert_eq!(m.blob(&b3, None), Known::Unknown);

    // Deaf, it knows of no miss either.
    let t = m.ticket();
    m.remember_entry(t, &key("m1"), None);
    m.deaf();
    assert_eq!(m.entry(&key("m1")), Known::Unknown);
}

#[test]
fn misses_do_not_push_out_what_exists() {
    let m = Memo::new(16 << 10);
    m.hearing();
    let t = m.ticket();
    m.remember_entry(t, &key("kept"), Some(&record("kept", 0)));
    for i in 0..1000 {
        m.remember_entry(t, &key(&format!("gone{i}")), None);
    }
    assert!(m.entry(&key("kept")).found().is_some());
    assert_eq!(m.entry(&key("gone999")), Known::Absent);
    assert_eq!(m.entry(&key("gone0")), Known::Unknown, "bounded");
}

use super::*;

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
    m.remember_entry(t, &record("a", 1));
    m.hearing();
    assert_eq!(m.entry(&key("a")), None);

    let t = m.ticket();
    m.remember_entry(t, &record("a", 1));
    assert_eq!(m.entry(&key("a")), Some(record("a", 1)));
    m.deaf();
    assert_eq!(m.entry(&key("a")), None);
    // Hearing again starts from nothing: changes may have been missed.
    m.hearing();
    assert_eq!(m.entry(&key("a")), None);
}

#[test]
fn an_answer_is_not_remembered_when_a_change_came_while_it_was_asked() {
    let m = hearing();
    let t = m.ticket();
    m.forget(Some(&Change::Entry(key("other"))));
    m.remember_entry(t, &record("a", 1));
    assert_eq!(m.entry(&key("a")), None);
}

#[test]
fn each_change_forgets_what_it_makes_wrong() {
    let m = hearing();
    let (one, two) = (blob(1), blob(2));
    let t = m.ticket();
    m.remember_blob(t, &sha(&one), &one, Some("team/a"));
    m.remember_blob(t, &sha(&one), &one, Some("team/b"));
    m.remember_blob(t, &sha(&two), &two, None);
    m.remember_name(t, "team/a", "v1", &key("m1"));
    m.remember_name(t, "team/a", "v2", &key("m2"));
    m.remember_entry(t, &record("m1", 1));
    m.remember_entry(t, &record("m2", 2));

    assert_eq!(m.blob(&sha(&one), Some("team/a")), Some(one));
    assert_eq!(m.blob(&Digest::Blake3(one.id.0), None), Some(one));
    assert_eq!(m.blob(&sha(&two), Some("team/a")), None, "never seen there");
    assert_eq!(m.blob(&sha(&two), None), Some(two));

    m.forget(Some(&Change::Link(one.id, "team/a".into())));
    assert_eq!(m.blob(&sha(&one), Some("team/a")), None);
    assert_eq!(m.blob(&sha(&one), Some("team/b")), Some(one));
    m.forget(Some(&Change::Blob(one.id)));
    assert_eq!(m.blob(&sha(&one), Some("team/b")), None);
    assert_eq!(m.blob(&sha(&one), None), None);

    m.forget(Some(&Change::Name("team/a".into(), "v1".into())));
    assert_eq!(m.name("team/a", "v1"), None);
    assert_eq!(m.name("team/a", "v2"), Some(key("m2")));
    m.forget(Some(&Change::Entry(key("m1"))));
    assert_eq!(m.entry(&key("m1")), None);
    assert_eq!(m.entry(&key("m2")), Some(record("m2", 2)));

    // A change not understood forgets everything.
    m.forget(None);
    assert_eq!(m.name("team/a", "v2"), None);
    assert_eq!(m.entry(&key("m2")), None);
    assert_eq!(m.blob(&sha(&two), None), None);
}

#[test]
fn a_full_memo_drops_what_was_not_used_lately() {
    // A quarter of 16 KiB per kind: entries of ~200 bytes, about 40 fit.
    let m = Memo::new(16 << 10);
    m.hearing();
    let t = m.ticket();
    m.remember_entry(t, &record("kept", 0));
    for i in 0..1000 {
        m.remember_entry(t, &record(&format!("e{i}"), i));
        // Used all along, so it stays young.
        assert!(m.entry(&key("kept")).is_some(), "dropped at {i}");
    }
    assert_eq!(m.entry(&key("e0")), None);
    assert!(m.entry(&key("e999")).is_some());
    let inner = m.inner.lock();
    assert!(inner.entries.young.len() + inner.entries.old.len() < 100);
}

#[test]
fn a_memo_of_size_zero_remembers_nothing() {
    let m = Memo::new(0);
    m.hearing();
    let t = m.ticket();
    m.remember_entry(t, &record("a", 1));
    assert_eq!(m.entry(&key("a")), None);
}

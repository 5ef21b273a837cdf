use super::*;

/// Per-protocol counters: these first, zeros for the rest.
fn pad(first: &[u64]) -> [u64; PROTOCOL_COUNT] {
    std::array::from_fn(|i| first.get(i).copied().unwrap_or(0))
}

fn hits(oci: u64, used: u64) -> Reading {
    Reading {
        hits: pad(&[oci]),
        used_bytes: used,
        ..Reading::default()
    }
}

#[test]
fn samples_within_a_minute_share_a_bucket_and_the_next_minute_opens_one() {
    let h = History::default();
    h.sample(hits(2, 100), 600);
    h.sample(hits(5, 150), 659);
    h.sample(hits(6, 120), 660);
    let hour = h.view("hour", hits(6, 120), 660).unwrap();
    let got: Vec<(u64, u64, u64)> = hour
        .buckets
        .iter()
        .map(|b| (b.start, b.counts.hits[0], b.counts.used_bytes))
        .collect();
    // Counts are the differences between readings; the gauge is the last.
    assert_eq!(got, [(600, 5, 150), (660, 1, 120)]);
    let day = h.view("day", hits(6, 120), 660).unwrap();
    assert_eq!(day.buckets.len(), 1, "one 15-minute bucket");
    assert_eq!(day.buckets[0].start, 0);
    assert_eq!(day.buckets[0].counts.hits[0], 6);
}

#[test]
fn a_view_counts_what_happened_since_the_last_sample() {
    let h = History::default();
    h.sample(hits(3, 10), 60);
    let v = h.view("hour", hits(10, 40), 200).unwrap();
    let last = v.buckets.back().unwrap();
    assert_eq!(
        (last.start, last.counts.hits[0], last.counts.used_bytes),
        (180, 7, 40)
    );
    // The view did not change the rings.
    let again = h.view("hour", hits(3, 10), 200).unwrap();
    let hits_now: Vec<u64> = again.buckets.iter().map(|b| b.counts.hits[0]).collect();
    assert_eq!(hits_now, [3, 0]);
    assert!(h.view("year", hits(3, 10), 200).is_none());
}

#[test]
fn rings_keep_at_most_their_capacity_and_drop_what_is_too_old() {
    let h = History::default();
    let mut total = 0;
    for minute in 0..10_000u64 {
        total += 1;
        h.sample(hits(total, 0), minute * 60);
    }
    for (name, width, capacity) in RANGES {
        let r = h.view(name, hits(total, 0), 9_999 * 60).unwrap();
        assert!(r.buckets.len() <= capacity, "{name}: {}", r.buckets.len());
        assert_eq!(r.width, width);
        let newest = r.buckets.back().unwrap().start;
        assert!(r
            .buckets
            .iter()
            .all(|b| b.start + width * capacity as u64 > newest));
    }
    // A gap longer than the ring empties it but for the new bucket.
    h.sample(hits(total + 1, 0), 10_000 * 60 + 86_400);
    let r = h
        .view("hour", hits(total + 1, 0), 10_000 * 60 + 86_400)
        .unwrap();
    assert_eq!(r.buckets.len(), 1);
}

#[test]
fn a_counter_that_went_down_counts_as_zero() {
    let h = History::default();
    h.sample(hits(10, 0), 0);
    h.sample(hits(4, 0), 30);
    let r = h.view("hour", hits(4, 0), 30).unwrap();
    assert_eq!(r.buckets[0].counts.hits[0], 10);
}

#[test]
fn history_survives_a_save_and_load_and_new_counters_add_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = History::path(dir.path());
    let h = History::default();
    h.sample(hits(4, 99), 120);
    h.save(&path).unwrap();
    assert!(!path.with_extension("json.tmp").exists());

    // A new process: its counters start at zero again.
    let h = History::load(&path);
    h.sample(hits(1, 77), 130);
    let r = h.view("hour", hits(1, 77), 130).unwrap();
    assert_eq!(r.buckets.len(), 1);
    assert_eq!(r.buckets[0].counts.hits[0], 5);
    assert_eq!(r.buckets[0].counts.used_bytes, 77);
}

#[test]
fn a_missing_or_corrupt_or_oversized_file_loads_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = History::path(dir.path());
    let empty = History::load(&path);
    assert!(
        empty
            .view("week", Reading::default(), 0)
            .unwrap()
            .buckets
            .len()
            <= 1
    );

    std::fs::write(&path, b"{not json").unwrap();
    let h = History::load(&path);
    assert_eq!(
        h.view("hour", Reading::default(), 0).unwrap().buckets.len(),
        1
    );

    // A hand-edited file with far more buckets than the ring holds.
    let mut big = Ring::new(60, 100_000);
    for i in 0..5_000u64 {
        big.add(i * 60, &hits(1, 0));
    }
    let saved = Rings {
        rings: vec![big],
        namespaces: Default::default(),
    };
    std::fs::write(&path, serde_json::to_vec(&saved).unwrap()).unwrap();
    let h = History::load(&path);
    let r = h.view("hour", Reading::default(), 4_999 * 60).unwrap();
    assert_eq!(r.buckets.len(), 60);
    assert_eq!(r.capacity, 60);
}

fn ns(hits: u64, used: u64) -> NsCounts {
    NsCounts {
        hits,
        misses: 0,
        used_bytes: used,
    }
}

#[test]
fn namespaces_have_series_of_their_own_up_to_a_bound() {
    let h = History::default();
    let mut reading = NsReading::new();
    for i in 0..namespaces::MAX_NAMESPACES + 5 {
        reading.insert(format!("ns{i:03}"), ns(1, 10));
    }
    h.sample_namespaces(reading.clone(), 60);
    reading.insert("ns000".into(), ns(4, 30));
    h.sample_namespaces(reading.clone(), 90);
    let r = h.view_namespace("ns000", "hour", &ns(6, 30), 100).unwrap();
    let got: Vec<(u64, u64, u64)> = r
        .buckets
        .iter()
        .map(|b| (b.start, b.counts.hits, b.counts.used_bytes))
        .collect();
    assert_eq!(
        got,
        [(60, 6, 30)],
        "1, then 3 more, then 2 since the sample"
    );
    assert_eq!(lock(&h.rings).namespaces.len(), namespaces::MAX_NAMESPACES);
    // One past the bound has no stored series, only what a view adds.
    let past = format!("ns{:03}", namespaces::MAX_NAMESPACES + 1);
    let r = h.view_namespace(&past, "day", &ns(1, 10), 100).unwrap();
    assert_eq!(r.buckets.len(), 1);
    assert!(h.view_namespace("ns000", "year", &ns(0, 0), 100).is_none());
}

#[test]
fn a_namespace_gone_for_a_week_gives_its_place_up_and_series_persist() {
    let h = History::default();
    let one = |name: &str| NsReading::from([(name.to_owned(), ns(1, 5))]);
    h.sample_namespaces(one("old"), 0);
    h.sample_namespaces(one("new"), 7 * 86_400 + 1);
    let kept: Vec<String> = lock(&h.rings).namespaces.keys().cloned().collect();
    assert_eq!(kept, ["new"]);

    let dir = tempfile::tempdir().unwrap();
    let path = History::path(dir.path());
    h.save(&path).unwrap();
    let back = History::load(&path);
    let r = back
        .view_namespace("new", "week", &ns(0, 5), 7 * 86_400 + 2)
        .unwrap();
    assert_eq!(r.buckets.iter().map(|b| b.counts.hits).sum::<u64>(), 1);
}

#[test]
fn bytes_per_protocol_and_refusals_per_reason_bucket_like_the_totals() {
    let h = History::default();
    let at = |http_in: u64, oci_out: u64, leased: u64, full: u64| Reading {
        bytes_in_by: pad(&[0, 0, http_in]),
        bytes_out_by: pad(&[oci_out]),
        bytes_in: http_in,
        bytes_out: oci_out,
        refused: [0, leased, 0, full],
        refusals: leased + full,
        ..Reading::default()
    };
    h.sample(at(100, 10, 1, 0), 60);
    h.sample(at(250, 30, 1, 2), 119);
    h.sample(at(300, 30, 3, 2), 120);
    let r = h.view("hour", at(300, 30, 3, 2), 120).unwrap();
    let got: Vec<_> = r
        .buckets
        .iter()
        .map(|b| {
            let c = &b.counts;
            (c.bytes_in_by[2], c.bytes_out_by[0], c.refused, c.refusals)
        })
        .collect();
    assert_eq!(got, [(250, 30, [0, 1, 0, 2], 3), (50, 0, [0, 2, 0, 0], 2)]);
}

#[test]
fn reasons_name_the_budgets_refusals_in_order_then_a_full_disk() {
    let budget: Vec<&str> = crate::cache::Refusal::ALL
        .iter()
        .map(|r| r.name())
        .collect();
    assert_eq!(REASONS[..budget.len()], budget[..]);
    assert_eq!(REASONS.len(), budget.len() + 1);
}

#[test]
fn a_file_from_before_the_breakdowns_still_loads_with_its_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = History::path(dir.path());
    // What the first release wrote: totals only, and no namespaces.
    let old = r#"{"rings":[{"width":60,"capacity":60,"buckets":[
        {"start":600,"hits":[1,0,2,0,0],"misses":[0,0,1,0,0],"bytes_in":500,
         "bytes_out":70,"evictions":1,"evicted_bytes":40,"refusals":2,"used_bytes":900}]}]}"#;
    std::fs::write(&path, old).unwrap();
    let h = History::load(&path);
    // The rings as loaded (a view would put this process's gauge in).
    let r = lock(&h.rings).rings[0].clone();
    assert_eq!(r.buckets.len(), 1, "{r:?}");
    let c = &r.buckets[0].counts;
    assert_eq!(
        (c.bytes_in, c.bytes_out, c.refusals, c.used_bytes),
        (500, 70, 2, 900)
    );
    assert_eq!((c.hits[2], c.misses[2]), (2, 1));
    assert_eq!((c.bytes_in_by, c.refused), ([0; PROTOCOL_COUNT], [0; 4]));
    // The next save writes the new fields; it loads again.
    h.save(&path).unwrap();
    let again = lock(&History::load(&path).rings).rings[0].clone();
    assert_eq!(again.buckets[0].counts, *c);
}

#[test]
fn memory_is_bounded_whatever_the_traffic() {
    // Every ring is full and every namespace slot taken: the saved file,
    // a fair measure of what is held, stays small.
    let h = History::default();
    let full = Reading {
        hits: [1 << 40; PROTOCOL_COUNT],
        bytes_in_by: [1 << 40; PROTOCOL_COUNT],
        refused: [1 << 40; 4],
        ..Reading::default()
    };
    let mut reading = NsReading::new();
    for i in 0..namespaces::MAX_NAMESPACES * 2 {
        reading.insert(format!("namespace-{i:04}"), ns(1, 1));
    }
    for step in 0..(7 * 86_400 / 60 + 10) {
        let now = step * 60;
        h.sample(
            if step % 2 == 0 {
                Reading::default()
            } else {
                full
            },
            now,
        );
        if step % 15 == 0 {
            h.sample_namespaces(reading.clone(), now);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = History::path(dir.path());
    h.save(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let rings = lock(&h.rings);
    let buckets: usize = rings.rings.iter().map(|r| r.buckets.len()).sum();
    assert_eq!(buckets, RANGES.iter().map(|(_, _, n)| n).sum::<usize>());
    assert_eq!(rings.namespaces.len(), namespaces::MAX_NAMESPACES);
    assert!(size < 8 << 20, "history.json is {size} bytes");
}

#[test]
fn a_file_from_before_the_proxies_loads_with_zeros_for_their_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let path = History::path(dir.path());
    // Five protocols to an array, as written before npm, pypi and go.
    let old = r#"{"rings":[{"width":60,"capacity":60,"buckets":[
        {"start":600,"hits":[1,2,3,4,5],"misses":[5,4,3,2,1],"bytes_in":15,
         "bytes_out":150,"bytes_in_by":[1,2,3,4,5],"bytes_out_by":[10,20,30,40,50],
         "evictions":0,"evicted_bytes":0,"refusals":0,"refused":[0,0,0,0],
         "used_bytes":900}]}]}"#;
    std::fs::write(&path, old).unwrap();
    let h = History::load(&path);
    let c = lock(&h.rings).rings[0].buckets[0].counts;
    assert_eq!(c.hits, pad(&[1, 2, 3, 4, 5]));
    assert_eq!(c.misses, pad(&[5, 4, 3, 2, 1]));
    assert_eq!(c.bytes_in_by, pad(&[1, 2, 3, 4, 5]));
    assert_eq!(c.bytes_out_by, pad(&[10, 20, 30, 40, 50]));
    // Every protocol an entry can have, in the order the arrays keep.
    assert_eq!(PROTOCOLS, crate::cache::Protocol::ALL.map(|p| p.name()));
    // A proxy's lookups count in the next sample, and save as eight.
    let mut npm = Reading::default();
    npm.hits[5] = 7;
    h.sample(npm, 630);
    h.save(&path).unwrap();
    let again = lock(&History::load(&path).rings).rings[0].clone();
    assert_eq!(again.buckets[0].counts.hits, pad(&[1, 2, 3, 4, 5, 7]));
}

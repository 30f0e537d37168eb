//! ListSignalingChannels over more than 1,200 channels with aws-sdk-kinesisvideo: page sizes,
//! the 500 default, keyset tokens under churn, BEGINS_WITH and the SDK paginator
//! (docs/protocol.md §9.3, docs/behaviour.md "Channels").
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use aws_sdk_kinesisvideo::types::{ChannelNameCondition, ComparisonOperator};
use aws_sdk_kinesisvideo::Client;
use common::*;

const N: usize = 1200;

/// Names that sort differently byte-wise and case-insensitively, and around `-`, `.`, `_`.
const ODD_NAMES: &[&str] = &[
    "0", "9z", "AB-x", "Ab", "Z9", "_x", "a-b", "a.b", "a_b", "ab", "x_", "z9",
];

fn name(i: usize) -> String {
    format!("ch-{i:04}")
}

fn begins_with(prefix: &str) -> ChannelNameCondition {
    ChannelNameCondition::builder()
        .comparison_operator(ComparisonOperator::BeginsWith)
        .comparison_value(prefix)
        .build()
}

/// One listing followed to its end with `max` per page; returns the names per page.
async fn walk(
    kv: &Client,
    max: Option<i32>,
    cond: Option<ChannelNameCondition>,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = kv
            .list_signaling_channels()
            .set_max_results(max)
            .set_channel_name_condition(cond.clone())
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("list (max {max:?}, token {token:?}): {}", DisplayErr(&e)));
        pages.push(
            out.channel_info_list
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.channel_name.unwrap())
                .collect(),
        );
        match out.next_token {
            Some(t) => {
                assert!(!t.is_empty(), "an empty NextToken must be omitted instead");
                assert!(
                    t.len() <= 1024
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
                    "NextToken {t:?} breaks the model's pattern"
                );
                token = Some(t);
            }
            None => break,
        }
        assert!(pages.len() <= 2 * N, "pagination does not end");
    }
    pages
}

/// Pages are full but the last, the last is not empty (NextToken is omitted on the last page),
/// and together they are `expected` in order.
#[track_caller]
fn assert_pages(pages: &[Vec<String>], size: usize, expected: &[String]) {
    let (last, full) = pages.split_last().unwrap();
    for (i, p) in full.iter().enumerate() {
        assert_eq!(p.len(), size, "page {i} of size {size} is not full");
    }
    assert!(
        (1..=size).contains(&last.len()) || expected.is_empty(),
        "last page of size {size} has {} names (NextToken must be omitted on the last page)",
        last.len()
    );
    let all: Vec<&String> = pages.iter().flatten().collect();
    let want: Vec<&String> = expected.iter().collect();
    if all != want {
        let got: BTreeSet<&String> = all.iter().copied().collect();
        let missing: Vec<_> = want.iter().filter(|n| !got.contains(*n)).take(10).collect();
        panic!(
            "page size {size}: {} names listed ({} distinct), {} expected; first missing {missing:?}; \
             first listed {:?}",
            all.len(),
            got.len(),
            want.len(),
            &all[..all.len().min(10)]
        );
    }
}

#[tokio::test]
async fn list_signaling_channels_pages_over_1200_channels() {
    let s = Server::start(&[]);
    let kv = s.client();

    // 1,212 channels, created 32 at a time.
    let mut expected: Vec<String> = (0..N).map(name).collect();
    expected.extend(ODD_NAMES.iter().map(|s| (*s).to_owned()));
    let to_create = expected.clone();
    run_concurrently(to_create.len(), 32, |i| {
        let (kv, n) = (kv.clone(), to_create[i].clone());
        async move {
            create(&kv, &n).await;
        }
    })
    .await;
    expected.sort(); // name order: byte order of the ASCII names

    // Page sizes 1, 7, 500 (the default) and 10000.
    for size in [1usize, 7, 10_000] {
        let pages = walk(&kv, Some(size as i32), None).await;
        assert_pages(&pages, size, &expected);
    }
    let default_pages = walk(&kv, None, None).await;
    assert_eq!(
        default_pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [500, 500, expected.len() - 1000],
        "MaxResults defaults to 500"
    );
    assert_pages(&default_pages, 500, &expected);

    // Each item is a whole ChannelInfo.
    let first = kv
        .list_signaling_channels()
        .max_results(1)
        .send()
        .await
        .unwrap()
        .channel_info_list
        .unwrap()
        .remove(0);
    assert_eq!(first, describe_name(&kv, &expected[0]).await);
    assert_channel_identity(&first, &expected[0], OPEN_ACCOUNT, REGION);

    // A token is a stateless cursor: using it twice gives the same page.
    let out = kv
        .list_signaling_channels()
        .max_results(3)
        .send()
        .await
        .unwrap();
    let token = out.next_token.unwrap();
    let again = |t: String| {
        let kv = kv.clone();
        async move {
            kv.list_signaling_channels()
                .max_results(3)
                .next_token(t)
                .send()
                .await
                .unwrap()
                .channel_info_list
                .unwrap()
        }
    };
    let p1 = again(token.clone()).await;
    let p2 = again(token).await;
    assert_eq!(p1, p2);
    assert_eq!(
        p1.iter()
            .map(|c| c.channel_name.clone().unwrap())
            .collect::<Vec<_>>(),
        expected[3..6]
    );

    // BEGINS_WITH.
    let hundred: Vec<String> = (100..200).map(name).collect();
    for size in [None, Some(7), Some(100)] {
        let pages = walk(&kv, size, Some(begins_with("ch-01"))).await;
        assert_pages(&pages, size.unwrap_or(500) as usize, &hundred);
    }
    let pages = walk(&kv, None, Some(begins_with("ch-1199"))).await;
    assert_eq!(pages, [[name(1199)]]);
    let pages = walk(&kv, None, Some(begins_with("a"))).await;
    assert_eq!(
        pages,
        [["a-b", "a.b", "a_b", "ab"]],
        "BEGINS_WITH is case-sensitive"
    );
    let pages = walk(&kv, Some(5), Some(begins_with("nothing-here"))).await;
    assert_eq!(pages.len(), 1);
    assert!(pages[0].is_empty());

    // The SDK paginator, by page and by item.
    let sdk_pages: Vec<_> = kv
        .list_signaling_channels()
        .max_results(250)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(sdk_pages.len(), expected.len().div_ceil(250));
    let names: Vec<String> = sdk_pages
        .into_iter()
        .flat_map(|p| p.channel_info_list.unwrap_or_default())
        .map(|c| c.channel_name.unwrap())
        .collect();
    assert_eq!(names, expected);
    let items: Vec<String> = kv
        .list_signaling_channels()
        .channel_name_condition(begins_with("ch-02"))
        .max_results(9)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.channel_name.unwrap())
        .collect();
    assert_eq!(items, (200..300).map(name).collect::<Vec<_>>());

    // Bad parameters.
    for max in [0, 10_001, -1] {
        expect_error(
            kv.list_signaling_channels().max_results(max).send().await,
            "InvalidArgumentException",
            400,
        );
    }
    for token in ["not a token!".to_owned(), "A".repeat(1025)] {
        expect_error(
            kv.list_signaling_channels().next_token(token).send().await,
            "InvalidArgumentException",
            400,
        );
    }
    expect_error(
        kv.list_signaling_channels()
            .channel_name_condition(begins_with(""))
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );
    expect_error(
        kv.list_signaling_channels()
            .channel_name_condition(
                ChannelNameCondition::builder()
                    .comparison_operator(ComparisonOperator::from("ENDS_WITH"))
                    .comparison_value("x")
                    .build(),
            )
            .send()
            .await,
        "InvalidArgumentException",
        400,
    );

    // Creates and deletes between pages: every channel that exists throughout is listed
    // exactly once, in order.
    let mut deleted = BTreeSet::new();
    let mut created = BTreeSet::new();
    let mut listed: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    let mut round = 0usize;
    loop {
        let out = kv
            .list_signaling_channels()
            .max_results(50)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        listed.extend(
            out.channel_info_list
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.channel_name.unwrap()),
        );
        round += 1;
        // Delete one channel ahead of the cursor and one behind it.
        for victim in [name(N - 1 - round * 13), name(round * 11)] {
            if deleted.insert(victim.clone()) {
                let arn = describe_name(&kv, &victim).await.channel_arn.unwrap();
                kv.delete_signaling_channel()
                    .channel_arn(arn)
                    .send()
                    .await
                    .unwrap();
            }
        }
        // Create one ahead and one behind (and one right at the cursor's neighbourhood).
        for fresh in [
            format!("{}-new", name(N - 1 - round * 17)),
            format!("{}-new", name(round * 3)),
            format!("{}-new", listed.last().unwrap()),
        ] {
            if created.insert(fresh.clone()) {
                create(&kv, &fresh).await;
            }
        }
        match out.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
        assert!(round < 200, "pagination under churn does not end");
    }
    assert!(round > 20, "churn must span many pages");
    let distinct: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(distinct.len(), listed.len(), "a channel was listed twice");
    assert!(
        listed.windows(2).all(|w| w[0] < w[1]),
        "listing under churn is not in name order"
    );
    for n in expected.iter().filter(|n| !deleted.contains(*n)) {
        assert!(
            distinct.contains(n),
            "{n} existed throughout but was not listed"
        );
    }
    for n in &listed {
        assert!(
            expected.contains(n) || created.contains(n),
            "listed {n}, which never existed"
        );
    }
    // And afterwards the listing is exactly the survivors plus the new channels.
    let mut now: Vec<String> = expected
        .iter()
        .filter(|n| !deleted.contains(*n))
        .cloned()
        .chain(created.iter().cloned())
        .collect();
    now.sort();
    let pages = walk(&kv, Some(10_000), None).await;
    assert_pages(&pages, 10_000, &now);
}

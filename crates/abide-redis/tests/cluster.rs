//! `RedisStore` on a real 3-node Redis Cluster started by the test (feature `cluster`):
//! buckets spread over the nodes, each bucket's script call goes to its slot's node, two
//! stores share a bucket, and the behaviour checks pass. Skips loudly without
//! `redis-server`/`redis-cli` (fails with `ABIDE_REQUIRE_REDIS=1`).
#![cfg(feature = "cluster")]

mod support;

use abide_cap::store::{Admission, BucketPolicy, Decision, QuotaStore};
use abide_cap::{BucketKey, Quota};
use abide_redis::RedisStore;
use std::num::NonZeroU32;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::RedisServer;
use tokio::time::Instant;

struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let node = RedisServer::start_with(
                "cluster",
                &["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"],
            )?;
            nodes.push(node);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match created {
            Ok(s) if s.success() => {}
            other => {
                if std::env::var("ABIDE_REQUIRE_REDIS").as_deref() == Ok("1") {
                    panic!("redis-cli --cluster create failed: {other:?}");
                }
                eprintln!("\n!!! SKIPPED cluster test: redis-cli --cluster create failed ({other:?}) !!!\n");
                return None;
            }
        }
        // Every node must agree the cluster is up (gossip takes a moment): bounded wait.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        for a in &addrs {
            let port = a.rsplit(':').next().unwrap_or_default();
            loop {
                let out = Command::new("redis-cli")
                    .args(["-p", port, "cluster", "info"])
                    .output()
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "cluster never came up"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(Cluster { nodes })
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    async fn store(&self) -> RedisStore {
        let urls = self.urls();
        RedisStore::cluster_builder(urls.iter().map(String::as_str))
            .with_timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("connect to the cluster")
    }

    /// Keys held by each node.
    fn keys_per_node(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| {
                let out = Command::new("redis-cli")
                    .args(["-p", &n.port().to_string(), "dbsize"])
                    .output()
                    .expect("redis-cli runs");
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_shards_by_bucket_and_shares_each_bucket() {
    if !support::redis_available("cluster") {
        return;
    }
    let Some(cluster) = tokio::task::block_in_place(Cluster::start) else {
        return;
    };
    let a = cluster.store().await;
    let b = cluster.store().await;

    // The behaviour checks, on a cluster: each bucket's calls go to its slot's node.
    abide_cap::testing::fresh_bucket_admits_at_once(&a).await;
    abide_cap::testing::pause_holds_every_admission_until_its_end(&a).await;
    abide_cap::testing::an_outage_holds_everyone_behind_one_probe(&a).await;
    abide_cap::testing::exhaustion_fails_fast_then_probes_once(&a).await;
    abide_cap::testing::learned_limit_spreads_remaining_over_the_reset(&a).await;
    abide_cap::testing::a_cancelled_reservation_gives_its_slot_back(&a).await;
    abide_cap::testing::declared_request_quota_paces_with_its_burst(&a).await;
    abide_cap::testing::buckets_are_independent(&a).await;

    // Many buckets spread over the three nodes.
    let policy = BucketPolicy::default();
    let now = Instant::now();
    for i in 0..60 {
        let key = BucketKey::new(&format!("tenant-{i}"));
        a.admit(&Admission::new(&key, 1, now, &policy))
            .await
            .unwrap();
    }
    let per_node = tokio::task::block_in_place(|| cluster.keys_per_node());
    assert!(
        per_node.iter().all(|&n| n >= 5),
        "keys per node {per_node:?}"
    );

    // Two stores ("processes") pace one declared quota on one bucket together.
    let mut paced = BucketPolicy::default();
    paced.request_quota =
        Some(Quota::per_second(NonZeroU32::new(10).unwrap()).allow_burst(NonZeroU32::MIN));
    let key = BucketKey::new("shared-on-cluster");
    let mut slots = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 { &a } else { &b };
        match store
            .admit(&Admission::new(&key, 1, now, &paced))
            .await
            .unwrap()
        {
            Decision::Go(_) => slots.push(now),
            Decision::Wait {
                reservation: Some(r),
                ..
            } => slots.push(r.at),
            other => panic!("{other:?}"),
        }
    }
    slots.sort();
    assert!(
        slots[9] - slots[0] >= Duration::from_millis(850),
        "{slots:?}"
    );
    assert_eq!(a.stats().unavailable + b.stats().unavailable, 0);
}

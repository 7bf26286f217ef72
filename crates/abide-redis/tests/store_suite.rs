//! `RedisStore` passes the same `QuotaStore` behaviour suite as `LocalStore`, each check
//! on its own `redis-server`.

mod support;

abide_cap::quota_store_suite!(match support::ServedStore::start(module_path!()).await {
    Some(store) => store,
    None => return,
});

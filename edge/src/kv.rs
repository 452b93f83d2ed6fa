//! [`Store`] over a Workers KV namespace.

use herenow_core::store::{ListPage, ListedKey, Store, StoreError};
use worker::kv::KvStore;

/// A Workers KV namespace as a [`Store`].
#[derive(Clone)]
pub struct Kv(pub KvStore);

fn err(e: impl core::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl Store for Kv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).bytes().await.map_err(err)
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        metadata: Option<String>,
        ttl_s: u64,
    ) -> Result<(), StoreError> {
        let mut b = self
            .0
            .put_bytes(key, &value)
            .map_err(err)?
            .expiration_ttl(ttl_s);
        if let Some(m) = metadata {
            // As a JSON value, not a string: KV stores metadata as JSON and counts its
            // 1,024 bytes after serialising, so a string would be escaped again and a
            // summary that fits (the engine budgets its JSON) would be refused with 413.
            let value: serde_json::Value =
                serde_json::from_str(&m).unwrap_or(serde_json::Value::String(m));
            b = b.metadata(value).map_err(err)?;
        }
        b.execute().await.map_err(err)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, StoreError> {
        let mut b = self.0.list().prefix(prefix.to_owned());
        if let Some(c) = cursor {
            b = b.cursor(c.to_owned());
        }
        let res = b.execute().await.map_err(err)?;
        let keys = res
            .keys
            .into_iter()
            .map(|k| ListedKey {
                name: k.name,
                metadata: k.metadata.map(|m| match m {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }),
            })
            .collect();
        Ok(ListPage {
            keys,
            cursor: if res.list_complete { None } else { res.cursor },
        })
    }
}

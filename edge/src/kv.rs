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
            b = b.metadata(m).map_err(err)?;
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
                metadata: k.metadata.and_then(|m| m.as_str().map(str::to_owned)),
            })
            .collect();
        Ok(ListPage {
            keys,
            cursor: if res.list_complete { None } else { res.cursor },
        })
    }
}

//! Key-value access (the `default` store): token records and other small JSON documents.

use crate::runtime::error::ApiError;
use serde::{de::DeserializeOwned, Serialize};

/// The store behind a [`Kv`]: Spin's key-value in the components, a map in unit tests.
pub trait KvBackend {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String>;
    fn delete(&self, key: &str) -> Result<(), String>;
}

pub struct Kv {
    backend: Box<dyn KvBackend>,
}

fn kv_error(e: String) -> ApiError {
    ApiError::internal(format!("key-value: {e}"))
}

impl Kv {
    pub fn new(backend: Box<dyn KvBackend>) -> Self {
        Kv { backend }
    }

    /// Reads a JSON document; a value that no longer parses is treated as absent.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ApiError> {
        let Some(bytes) = self.backend.get(key).map_err(kv_error)? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    pub fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(value).map_err(ApiError::internal)?;
        self.backend.set(key, &bytes).map_err(kv_error)
    }

    pub fn delete(&self, key: &str) -> Result<(), ApiError> {
        self.backend.delete(key).map_err(kv_error)
    }
}

#[cfg(test)]
pub mod memory {
    //! An in-memory store for unit tests.
    use super::KvBackend;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    #[derive(Clone, Default)]
    pub struct MemoryKv(pub Rc<RefCell<HashMap<String, Vec<u8>>>>);

    impl KvBackend for MemoryKv {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.borrow().get(key).cloned())
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
            self.0.borrow_mut().insert(key.to_string(), value.to_vec());
            Ok(())
        }
        fn delete(&self, key: &str) -> Result<(), String> {
            self.0.borrow_mut().remove(key);
            Ok(())
        }
    }
}

//! Per-connection state, kept by the registry for the connection's lifetime.

use std::any::Any;
use std::sync::Mutex;

/// Per-connection state: values keyed by their type, kept for the connection's
/// lifetime (ASP.NET Core's `Context.Items`).
#[derive(Default)]
pub struct Items(Mutex<http::Extensions>);

impl Items {
    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.0.lock().expect("items lock").insert(value)
    }

    /// A copy of the stored value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.lock().expect("items lock").get::<T>().cloned()
    }

    /// Removes the stored value of type `T`.
    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.0.lock().expect("items lock").remove::<T>()
    }

    /// Runs `f` on the stored value of type `T`, inserting `T::default()` first
    /// when there is none. The lock is held only during `f`, which must not block.
    pub fn update<T, R>(&self, f: impl FnOnce(&mut T) -> R) -> R
    where
        T: Clone + Default + Send + Sync + Any,
    {
        let mut items = self.0.lock().expect("items lock");
        f(items.get_or_insert_default::<T>())
    }
}

impl std::fmt::Debug for Items {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Items(..)")
    }
}

//! A small stack of idle connections per server, used by the async client.
//!
//! Connections are taken out for one exchange and put back only when they are known to be in
//! step with the server; the stack keeps at most `max_idle` of them and drops the rest.
//! The blocking client uses [`crate::pool::Pool`] (queue strategy). The async client keeps
//! this stack for now: `Pool::get_async` creates objects through the blocking
//! `Manager::create` on tokio's blocking threads, while async connections are made with
//! tokio's own async connect; moving it onto the pool is a follow-up.

use std::sync::{Mutex, PoisonError};

/// Idle connections of one server.
#[derive(Debug)]
pub(crate) struct IdleStack<T> {
    items: Mutex<Vec<T>>,
    max_idle: usize,
}

impl<T> IdleStack<T> {
    /// An empty stack keeping at most `max_idle` connections.
    pub(crate) fn new(max_idle: usize) -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// The most recently returned idle connection, if any.
    pub(crate) fn take(&self) -> Option<T> {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Returns a healthy connection; dropped when the stack is full.
    pub(crate) fn put(&self, conn: T) {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        if items.len() < self.max_idle {
            items.push(conn);
        }
    }

    /// Drops every idle connection.
    pub(crate) fn clear(&self) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

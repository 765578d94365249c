//! Our server's disk in memory is the executor's own in-memory backend
//! (`grasp_executor::memory`): the checker reads its visible side as `Store`.

pub use grasp_executor::memory::{Disk as Store, LocalRepo};

//! GPU slots: a trial that asks for N devices waits until N are free and holds them, alone, until it
//! ends.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub struct GpuPool {
    capacity: usize,
    free: Mutex<Vec<u32>>,
    released: Notify,
}

impl GpuPool {
    pub fn new(devices: Vec<u32>) -> Self {
        Self { capacity: devices.len(), free: Mutex::new(devices), released: Notify::new() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Waits for `n` free devices and takes them; asking for more than exist waits forever, so the
    /// spec validation refuses that first.
    pub async fn acquire(self: &Arc<Self>, n: usize) -> GpuLease {
        loop {
            let released = self.released.notified();
            if let Some(devices) = self.try_take(n) {
                return GpuLease { pool: Arc::clone(self), devices };
            }
            released.await;
        }
    }

    fn try_take(&self, n: usize) -> Option<Vec<u32>> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        (free.len() >= n).then(|| {
            free.sort_unstable();
            free.drain(..n).collect()
        })
    }
}

/// Devices held by one trial; they return to the pool when the lease is dropped.
pub struct GpuLease {
    pool: Arc<GpuPool>,
    devices: Vec<u32>,
}

impl GpuLease {
    pub fn devices(&self) -> &[u32] {
        &self.devices
    }
}

impl Drop for GpuLease {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        free.append(&mut self.devices);
        drop(free);
        self.pool.released.notify_waiters();
    }
}

/// The devices `nvidia-smi` lists, or none where it is absent.
pub fn detect_gpus() -> Vec<u32> {
    let output = std::process::Command::new("nvidia-smi").args(["--query-gpu=index", "--format=csv,noheader"]).output();
    match output {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn devices_are_never_given_to_two_holders_and_return_on_drop() {
        let pool = Arc::new(GpuPool::new(vec![0, 1, 2]));
        let a = pool.acquire(2).await;
        assert_eq!(a.devices(), [0, 1]);
        let waiting = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.acquire(2).await.devices().to_vec() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "only one device is free");
        drop(a);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!(got, [0, 1]);
    }
}

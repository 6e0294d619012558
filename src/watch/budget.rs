//! A byte budget for the scheduled re-hash: the hashing calls
//! [`Budget::spend`] as it reads, and is put to sleep whenever it runs
//! ahead of `rate` bytes per second since it started, so a 400 GB model is
//! re-read in the background without taking the disk from the server.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes per second, measured from the first byte.
pub struct Budget {
    rate: u64,
    state: Mutex<(Instant, u64)>,
}

impl Budget {
    /// A budget of `rate` bytes per second (at least one), starting now.
    pub fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            state: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Counts `n` bytes read and sleeps until they fit in the budget.
    pub fn spend(&self, n: u64) {
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.1 += n;
            let due = Duration::from_secs_f64(state.1 as f64 / self.rate as f64);
            due.saturating_sub(state.0.elapsed())
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// Bytes counted so far.
    pub fn spent(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_faster_than_the_rate_sleeps_to_hold_it() {
        let budget = Budget::new(1_000_000);
        let start = Instant::now();
        for _ in 0..10 {
            budget.spend(20_000);
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(195), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(budget.spent(), 200_000);
    }
}

//! One round of concurrent AWS calls that never leaves a call in flight.
//!
//! `try_join_all` returns at the first error and drops the other calls: a request already sent
//! still runs in AWS after we have answered FAILED, so the rollback Delete, which reads back what
//! exists, can miss what it makes (a route table that appears after the Delete looked, and
//! DeleteVpc then fails with DependencyViolation: ROLLBACK_FAILED). [`all_settled`] waits for
//! every call, then reports the first error in call order.

use futures::future::join_all;
use std::future::Future;

/// Every call's result once all have finished; the first error (in call order) if any failed.
pub async fn all_settled<T, E, F>(calls: impl IntoIterator<Item = F>) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    join_all(calls).await.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_failed_call_waits_for_the_others_to_finish_before_the_round_fails() {
        let slow_done = AtomicBool::new(false);
        let calls: Vec<futures::future::BoxFuture<Result<u8, &str>>> = vec![
            Box::pin(async { Err("CreateSubnet: UnauthorizedOperation") }),
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                slow_done.store(true, Ordering::SeqCst);
                Ok(1)
            }),
        ];
        assert_eq!(
            all_settled(calls).await,
            Err("CreateSubnet: UnauthorizedOperation")
        );
        assert!(
            slow_done.load(Ordering::SeqCst),
            "the slow call finished first"
        );
    }

    #[tokio::test]
    async fn every_result_in_call_order_when_all_succeed() {
        let calls = (1..=3).map(|n| async move { Ok::<_, ()>(n) });
        assert_eq!(all_settled(calls).await, Ok(vec![1, 2, 3]));
    }
}

//! GraphQL cost throttling that states its cost model: Shopify's `extensions.cost`
//! (shopify.dev/docs/api/usage/rate-limits, "GraphQL Admin API rate limits"):
//!
//! ```json
//! {"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}],
//!  "extensions":{"cost":{"requestedQueryCost":101,"actualQueryCost":null,
//!    "throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":50,"restoreRate":50.0}}}}
//! ```
//!
//! The bucket refills at `restoreRate` points per second, so the wait is
//! `(requestedQueryCost − currentlyAvailable) / restoreRate`; a query costing more than
//! `maximumAvailable` can never run.

use super::prose::MAX_WAIT;
use serde_json::Value;
use std::time::Duration;

/// What a stated cost model says about the request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CostFinding {
    /// Enough points will be back after this long.
    Wait(Duration),
    /// The query costs more than the bucket can ever hold.
    NeverFits,
}

/// Reads `extensions.cost` of a GraphQL response. Fields of the wrong type, negative or
/// non-finite numbers and a zero restore rate give no finding.
pub(crate) fn read(root: &Value) -> Option<CostFinding> {
    let cost = root.get("extensions")?.get("cost")?;
    let num = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite() && *x >= 0.0)
    };
    let requested = num(cost, "requestedQueryCost")?;
    let status = cost.get("throttleStatus")?;
    if num(status, "maximumAvailable").is_some_and(|max| requested > max) {
        return Some(CostFinding::NeverFits);
    }
    let available = num(status, "currentlyAvailable")?;
    let rate = num(status, "restoreRate").filter(|r| *r > 0.0)?;
    let secs = ((requested - available).max(0.0) / rate).min(MAX_WAIT.as_secs_f64());
    Some(CostFinding::Wait(Duration::from_secs_f64(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(json: &str) -> Option<CostFinding> {
        read(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn shopify_cost_gives_the_refill_wait() {
        let throttled = r#"{"extensions":{"cost":{"requestedQueryCost":101,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":50,"restoreRate":50.0}}}}"#;
        assert_eq!(
            cost(throttled),
            Some(CostFinding::Wait(Duration::from_millis(1020)))
        );
        let huge = r#"{"extensions":{"cost":{"requestedQueryCost":1500,"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":1000,"restoreRate":50.0}}}}"#;
        assert_eq!(cost(huge), Some(CostFinding::NeverFits));
    }

    #[test]
    fn malformed_cost_fields_are_ignored() {
        for odd in [
            r#"{"extensions":{"cost":{"requestedQueryCost":"101","throttleStatus":{"currentlyAvailable":50,"restoreRate":50}}}}"#,
            r#"{"extensions":{"cost":{"requestedQueryCost":101,"throttleStatus":{"currentlyAvailable":50,"restoreRate":0}}}}"#,
            r#"{"extensions":{"cost":{"requestedQueryCost":-1,"throttleStatus":{"currentlyAvailable":50,"restoreRate":50}}}}"#,
            r#"{"extensions":{"cost":{"requestedQueryCost":101,"throttleStatus":[]}}}"#,
            r#"{"extensions":{"cost":5}}"#,
            r#"{"extensions":null}"#,
            r#"[]"#,
        ] {
            assert_eq!(cost(odd), None, "{odd}");
        }
        // Already enough points: no wait.
        let ok = r#"{"extensions":{"cost":{"requestedQueryCost":10,"throttleStatus":{"maximumAvailable":1000,"currentlyAvailable":500,"restoreRate":50}}}}"#;
        assert_eq!(cost(ok), Some(CostFinding::Wait(Duration::ZERO)));
    }
}

//! How Meta reviews a creation request: the paths through
//! [`REQUEST_STATUSES`](crate::REQUEST_STATUSES) a request can take, one
//! status per review step, and how often each is taken.

/// A path of review statuses, from `pending` to where the request stays.
pub(crate) struct ReviewPath {
    pub statuses: &'static [&'static str],
    /// In thousandths of requests.
    pub per_mille: u32,
}

/// Every path, most of them ending approved (78%).
pub(crate) const REVIEW_PATHS: [ReviewPath; 9] = [
    ReviewPath { statuses: &["pending", "under_review", "approved"], per_mille: 550 },
    ReviewPath { statuses: &["pending", "auto_approved"], per_mille: 120 },
    ReviewPath { statuses: &["pending", "under_review", "disapproved"], per_mille: 80 },
    ReviewPath { statuses: &["pending", "auto_disapproved"], per_mille: 40 },
    // The advertiser never answered.
    ReviewPath { statuses: &["pending", "under_review", "requested_change"], per_mille: 50 },
    ReviewPath { statuses: &["pending", "under_review", "requested_change", "appeal_under_review", "appeal_approved"], per_mille: 80 },
    ReviewPath { statuses: &["pending", "under_review", "requested_change", "appeal_under_review", "appeal_disapproved"], per_mille: 30 },
    ReviewPath { statuses: &["pending", "under_review", "disapproved", "appeal_under_review", "appeal_approved"], per_mille: 30 },
    ReviewPath { statuses: &["pending", "under_review", "disapproved", "appeal_under_review", "appeal_disapproved"], per_mille: 20 },
];

/// The statuses Meta moves a request to from `status`.
#[cfg(test)]
pub(crate) fn next_statuses(status: &str) -> &'static [&'static str] {
    match status {
        "pending" => &["under_review", "auto_approved", "auto_disapproved"],
        "under_review" => &["approved", "disapproved", "requested_change"],
        "disapproved" | "requested_change" => &["appeal_under_review"],
        "appeal_under_review" => &["appeal_approved", "appeal_disapproved"],
        _ => &[],
    }
}

/// Whether a request in this status carries `disapproval_reasons`: from its
/// disapproval on (appeals included), or an appeal's refusal.
pub(crate) fn disapproved_before(path: &[&str], step: usize) -> bool {
    path[..=step].iter().any(|s| matches!(*s, "disapproved" | "auto_disapproved" | "appeal_disapproved"))
}

/// Whether a request in this status carries `request_change_reasons`.
pub(crate) fn change_requested_before(path: &[&str], step: usize) -> bool {
    path[..=step].contains(&"requested_change")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{REQUEST_STATUSES, request_approved};

    #[test]
    fn paths_follow_meta_s_transitions() {
        assert_eq!(REVIEW_PATHS.iter().map(|p| p.per_mille).sum::<u32>(), 1000);
        for path in &REVIEW_PATHS {
            assert_eq!(path.statuses[0], "pending");
            for pair in path.statuses.windows(2) {
                assert!(next_statuses(pair[0]).contains(&pair[1]), "{} → {}", pair[0], pair[1]);
            }
            assert!(path.statuses.iter().all(|s| REQUEST_STATUSES.contains(s)));
            // Where it stays has no way out but an appeal.
            let last = path.statuses[path.statuses.len() - 1];
            assert!(request_approved(last) || matches!(last, "disapproved" | "auto_disapproved" | "requested_change" | "appeal_disapproved"));
        }
        let approved: u32 = REVIEW_PATHS.iter().filter(|p| request_approved(p.statuses[p.statuses.len() - 1])).map(|p| p.per_mille).sum();
        assert!(approved >= 700, "{approved}");
    }
}

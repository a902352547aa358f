//! Ad accounts resold on Meta (the ad-account reseller dialect's service layer).

pub mod insights;
pub mod sandbox;

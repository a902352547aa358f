//! The telephony dialect (spec 002). Being written.

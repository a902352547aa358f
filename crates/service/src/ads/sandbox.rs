//! The sandbox: Meta simulated inside subledger.

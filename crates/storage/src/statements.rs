//! Reads behind statements: wallet movements over a period. Being written.

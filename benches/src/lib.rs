//! Shared helpers for outpost's benchmarks: synthetic KSM-shaped exposition bodies.

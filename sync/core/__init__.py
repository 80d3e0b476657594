"""The pure scoring core: stdlib and sync.errors only; no I/O, no clock, no logging."""

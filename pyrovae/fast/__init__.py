"""Speed machinery that wraps the core from outside: tracing, compiling, oneDNN kernels."""

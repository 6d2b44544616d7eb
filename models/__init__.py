"""Models written in the tinygrad_edu DSL."""

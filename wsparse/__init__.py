"""wsparse: weight-sparse transformers on Python code and the circuits they use."""

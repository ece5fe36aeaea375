"""Demo tasks built on the library: data, training loop, evaluation and decoding, importable from a notebook."""

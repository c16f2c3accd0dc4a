"""Seed and drop readers: listings planned on the driver (folders, manifests, packed
Parquet, inline text), input checks, and the decode/tokenize callables Ray Data runs."""

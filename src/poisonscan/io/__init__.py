"""Find inputs, detect their record shape, and stream them as bounded Arrow batches."""

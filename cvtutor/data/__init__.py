"""Data for the book: seeded procedural worlds and loaders for real data sets.

Nothing is downloaded at run time. Each generator is bit-identical for a seed; each real-data
loader reads the data set's own file format and says which layout it expected when it fails.
"""

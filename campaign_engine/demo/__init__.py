"""Demo data of a Chinese retail bank: `generator` makes it (pure, deterministic for a seed),
`loader` writes it through the store's upsert writer.

Nothing is imported here, so using the generator does not import the database layer.
"""

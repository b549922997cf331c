"""`python -m dream_engine ...`: the command line over the library (`main` for a dream,
`study` for comparisons, `flags` for what both share)."""

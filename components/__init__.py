"""Everything that draws: the page frame, chart builders and cached wrappers around core."""

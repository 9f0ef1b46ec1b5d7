"""One module per command-line tool: parse_args + main (scripts/ and convert/ hold thin shims)."""

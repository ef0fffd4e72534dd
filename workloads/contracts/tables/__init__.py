"""One module per domain: its tables and their columns' meaning."""

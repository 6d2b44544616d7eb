"""The compiler: graph IR, passes, kernel IR and backends (in progress; see the issues)."""

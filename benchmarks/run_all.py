"""Run the benchmarks once, one after the other: ``python benchmarks/run_all.py``.

Benchmark 6 (``bench_ratelimit.py``) takes over a minute by nature; it runs only with
``--all``."""

from __future__ import annotations

import sys

import bench_fanout
import bench_import
import bench_listing
import bench_login
import bench_overhead

if __name__ == "__main__":
    bench_overhead.main()
    bench_listing.main()
    bench_import.main()
    bench_login.main()
    bench_fanout.main()
    if "--all" in sys.argv[1:]:
        import bench_ratelimit

        bench_ratelimit.main()

"""Run every benchmark once, one after the other: ``python benchmarks/run_all.py``."""

from __future__ import annotations

import bench_import
import bench_listing
import bench_login
import bench_overhead

if __name__ == "__main__":
    bench_overhead.main()
    bench_listing.main()
    bench_import.main()
    bench_login.main()

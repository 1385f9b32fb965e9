"""`python -m bench.capacity`: see bench/capacity/load.py."""
# Locust patches the standard library for gevent on import: first, before anything else.
import locust  # noqa: F401,I001

from bench.capacity.load import main

raise SystemExit(main())

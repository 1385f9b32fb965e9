"""`python -m bench [--quick] [--out PATH] [--only SECTIONS] [--threads N]`: see bench/run.py."""
from bench.run import main

raise SystemExit(main())

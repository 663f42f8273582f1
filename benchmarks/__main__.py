"""`python -m benchmarks`: print every benchmark's figures."""

from benchmarks import request_costs

request_costs.report()

"""`python -m benchmarks`: print every benchmark's figures."""

from benchmarks import join_storm, request_costs

request_costs.report()
join_storm.report()

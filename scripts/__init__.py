"""Operator commands for deployed stacks, run through make targets."""

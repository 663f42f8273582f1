"""Adapters to AWS: DynamoDB repositories and the @connections sender.

AWS errors are translated here; the domain never sees a botocore exception.
"""

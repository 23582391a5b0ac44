"""`python -m bench`: cold starts, warm CPU per invocation, AWS requests and cost per task, local throughput.

Writes bench/results.json and prints a table. Not part of the test run: it takes a few minutes.
"""

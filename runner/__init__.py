"""PTD runner: executes pytest runs and turns them into events and metrics.

Plain Python, no Django. ``runner.inrun`` holds the package injected into the run's own
interpreter; ``runner.pool`` launches runs; ``runner.metrics`` has the pure metric functions.
"""

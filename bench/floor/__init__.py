"""The bare-Django floor of bench/bench_throughput.py: what one logged-in page costs on
this stack with nothing of the client area in it. See settings.py."""

"""What the tests need to run the system for real: isolated infrastructure, processes, broker taps."""

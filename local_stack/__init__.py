"""The whole system on one machine: emulators and processes on loopback."""

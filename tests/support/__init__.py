"""Test infrastructure that several test folders share: the servers a test starts for itself."""

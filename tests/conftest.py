"""Test-wide settings. OpenMP threads that spin while idle slow everything 10x on a busy 2-core machine."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

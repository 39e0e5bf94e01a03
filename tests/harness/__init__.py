"""Test harness for cosmoext: W^X seccomp guard, LD_AUDIT guard."""

#!/usr/bin/env python3
"""gen_fixtures.py - write the unit and CLI test fixtures into OUTDIR.

Fixtures are written by numpy and h5py themselves, so the readers are tested
on the bytes those libraries produce. Each tests/fixtures_*.py module defines
generate(outdir); this script runs them all. Deterministic: fixed seeds.
"""
import glob
import importlib.util
import os
import sys


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "fixtures_*.py"))):
        spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.generate(out)


if __name__ == "__main__":
    main()

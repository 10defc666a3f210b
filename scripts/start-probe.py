#!/usr/bin/env python3
"""start-probe.py - time build/start-probe (scripts/start-probe.c) and `maxsim -v search` from
outside: each process's wall, when its last output line arrived and when it was reaped (the
gap is the process's exit: the GPU driver's teardown), and the probe's own measures.

  python3 scripts/start-probe.py --file DOCS.npy [--reps 3] [--threads 8,16]
                                 [--prefetch-mib 0,1024] [--search 'ARGS...'] [--skip-probe]
                                 [--nvidia]

With --search, `maxsim -v search ARGS` runs --reps times too and its -v lines are shown with
the time (from the process's start) at which each arrived.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, env):
    """(wall, last line at, lines with arrival times) of one process, stdout and stderr read
    on threads; reaped time is the wall."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    lines = []
    lock = threading.Lock()

    def pump(f):
        for raw in iter(f.readline, b""):
            with lock:
                lines.append((time.perf_counter() - t0, raw.decode(errors="replace").rstrip()))

    ts = [threading.Thread(target=pump, args=(f,)) for f in (p.stdout, p.stderr)]
    for t in ts:
        t.start()
    p.wait()
    wall = time.perf_counter() - t0
    for t in ts:
        t.join()
    last = max((t for t, _ in lines), default=0.0)
    return wall, last, sorted(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default="16")
    ap.add_argument("--prefetch-mib", default="1024")
    ap.add_argument("--search", default="")
    ap.add_argument("--maxsim", default=os.path.join(ROOT, "maxsim"))
    ap.add_argument("--nvidia", action="store_true")
    ap.add_argument("--skip-probe", action="store_true", help="only the maxsim runs")
    a = ap.parse_args()
    env = dict(os.environ)
    if a.nvidia:
        icd = tempfile.mkdtemp()
        with open(os.path.join(icd, "nvidia.icd"), "w") as f:
            f.write("libnvidia-opencl.so.1\n")
        env["OCL_ICD_VENDORS"] = icd
        env["MAXSIM_DEVICE"] = "gpu"
        if os.path.isdir(os.path.join(ROOT, ".devlibs")):
            env["LD_LIBRARY_PATH"] = os.path.join(ROOT, ".devlibs") + (
                ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    probe = os.path.join(ROOT, "build", "start-probe")
    subprocess.run(["cat", a.file], stdout=subprocess.DEVNULL)  # into the page cache
    for threads in ([] if a.skip_probe else a.threads.split(",")):
        for pre in a.prefetch_mib.split(","):
            for how in ("_exit", "exit", "fork"):
                for rep in range(a.reps):
                    wall, last, lines = timed([probe, a.file, threads, pre, how], env)
                    print(f"## probe threads={threads} prefetch={pre} MiB leave={how} rep {rep}: "
                          f"wall {wall:.4f} s, last line at {last:.4f} s, exit took "
                          f"{wall - last:.4f} s", flush=True)
                    if rep == 0 or how == "_exit":
                        for t, l in lines:
                            print(f"   {t:.4f}  {l}")
                    sys.stdout.flush()
    if a.search:
        cmd = [a.maxsim, "-v", "search"] + shlex.split(a.search)
        timed(cmd, env)  # warm-up
        for variant, extra in (("default", {}), ("released", {"MAXSIM_RELEASE_DEVICES": "1"}),
                               ("8 threads", {"MAXSIM_READ_THREADS": "8"}),
                               ("24 threads", {"MAXSIM_READ_THREADS": "24"})):
            for rep in range(a.reps):
                wall, last, lines = timed(cmd, dict(env, **extra))
                print(f"## maxsim search ({variant}) rep {rep}: wall {wall:.4f} s, last line at "
                      f"{last:.4f} s, exit took {wall - last:.4f} s", flush=True)
                if rep == 0 or variant == "default":
                    for t, l in lines:
                        if l.startswith("maxsim:"):
                            print(f"   {t:.4f}  {l}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()

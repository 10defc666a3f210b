#!/usr/bin/env python3
"""bench_gpu.py - maxsim against its peers on the ANCHORS.md shapes; writes docs/benchmarks.md.

Run by scripts/bench-gpu on the NVIDIA machine. For each shape (Nq, Nd, Lq, Ld, dim), float16
inputs:
  maxsim     `maxsim bench --json` kernel median: the default path (tensor cores) and
             MAXSIM_NV_MMA=0 (the portable kernels through NVIDIA's OpenCL)
  torch      naive: S = einsum(Q, D) materialized, amax over Ld, sum over Lq; fp32-accumulate
             (inputs upcast) and fp16 (output fp16), timed with triton.testing.do_bench median
  flash      flash_maxsim.flash_maxsim_batched(Q, D, shared_docs=True)   (if installed)
  lik        late_interaction_kernels.maxsim(Q, D)                       (if installed)
With --sweep, every tensor-core variant of SWEEP is timed too (MAXSIM_NV_VARIANT), for tuning.
Usage: python3 scripts/bench_gpu.py [--sweep] [--portable-reps N] [--no-portable] [--no-naive]
floor = max(GFLOP / GEMM rate, bytes once / copy rate); both ceilings measured in the same run
(cuBLAS fp16 8192^3 and a device-to-device copy), as ANCHORS.md did.
"""
import json
import os
import subprocess
import sys
import time

SHAPES = [  # name, Nq, Nd, Lq, Ld, dim
    ("text-1q", 1, 1000, 32, 300, 128),
    ("text-1q-5k", 1, 5000, 32, 300, 128),
    ("text-64q-10k", 64, 10000, 32, 300, 128),
    ("longdoc-1q", 1, 1000, 32, 1024, 128),
    ("colpali-1q", 1, 1000, 1024, 1024, 128),
    ("edge-d48", 1, 1000, 32, 1024, 48),
]


# Tensor-core variants timed with --sweep (MAXSIM_NV_VARIANT); a stream variant applies only to
# queries of at most its row blocks.
SWEEP = {
    "text-1q": ["stream,2,1,4", "stream,2,2,3", "stream,2,2,4", "stream,2,4,2", "staged,2,4,64"],
    "text-1q-5k": ["stream,2,2,4", "stream,2,1,6", "staged,2,4,64"],
    "longdoc-1q": ["stream,2,2,4", "stream,2,1,6", "staged,2,4,64"],
    "edge-d48": ["stream,2,4,4", "stream,2,2,8", "stream,2,8,4", "staged,2,4,64"],
    "colpali-1q": ["staged,2,1,64", "staged,4,1,64", "staged,4,1,32", "staged,1,1,64",
                   "staged,2,1,32"],
    "text-64q-10k": ["staged,2,1,64", "staged,4,1,64", "staged,4,1,32", "staged,1,1,64",
                     "staged,2,1,32"],
}


def maxsim_bench(shape, env_add, reps=50, extra=(), agreement=None):
    _, nq, nd, lq, ld, dim = shape
    env = dict(os.environ, **env_add)
    r = subprocess.run(["./maxsim", "bench", "--shape", f"{nq},{nd},{lq},{ld},{dim}",
                        "--dtype", "f16", "--reps", str(reps), "--json", *extra],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    j = json.loads(r.stdout.strip().splitlines()[-1])
    if agreement is not None and j.get("recall_at_10", -1) >= 0:
        agreement.append((shape[0], j["recall_at_10"], j["kendall_tau"]))
    return j["kernel_ms_median"], j.get("path", "")


def main():
    args = sys.argv[1:]
    sweep = "--sweep" in args
    portable_reps = int(args[args.index("--portable-reps") + 1]) if "--portable-reps" in args else 5
    import torch
    from triton.testing import do_bench

    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    # Ceilings.
    a = torch.randn(8192, 8192, device=dev, dtype=torch.float16)
    gemm_ms = do_bench(lambda: a @ a, warmup=100, rep=500, return_mode="median")
    gemm_tflops = 2 * 8192 ** 3 / gemm_ms / 1e9
    buf = torch.empty(1 << 30, device=dev, dtype=torch.uint8)
    dst = torch.empty_like(buf)
    copy_ms = do_bench(lambda: dst.copy_(buf), warmup=100, rep=500, return_mode="median")
    copy_tbs = 2 * buf.numel() / copy_ms / 1e9
    del a, buf, dst

    peers = {}
    try:
        import flash_maxsim
        peers["flash-maxsim"] = lambda Q, D: flash_maxsim.flash_maxsim_batched(Q, D,
                                                                              shared_docs=True)
    except Exception as e:  # noqa: BLE001 - report and go on
        print(f"flash-maxsim unavailable: {e}", file=sys.stderr)
    try:
        import late_interaction_kernels as lik
        peers["LIK"] = lambda Q, D: lik.maxsim(Q, D)
    except Exception as e:  # noqa: BLE001
        print(f"late-interaction-kernels unavailable: {e}", file=sys.stderr)

    rows, sweeps, agree = [], [], []
    for shape in SHAPES:
        name, nq, nd, lq, ld, dim = shape
        gflop = 2 * nq * nd * lq * ld * dim / 1e9
        nbytes = 2 * (nq * lq * dim + nd * ld * dim) + 4 * nq * nd
        floor = max(gflop / gemm_tflops, nbytes / copy_tbs / 1e9)
        Q = torch.randn(nq, lq, dim, device=dev, dtype=torch.float16)
        D = torch.randn(nd, ld, dim, device=dev, dtype=torch.float16)
        t = {}
        t["maxsim tensor-core"], info = maxsim_bench(shape, {})
        print(f"{name}: maxsim default: {t['maxsim tensor-core']} ms [{info}]", flush=True)
        if "--no-portable" not in args:
            t["maxsim portable"], info = maxsim_bench(shape, {"MAXSIM_NV_MMA": "0"}, portable_reps)
            print(f"{name}: maxsim portable: {t['maxsim portable']} ms [{info}]", flush=True)
        if "--no-int8" not in args:
            t["maxsim int8"], info = maxsim_bench(shape, {}, 20, ("--precision", "int8"),
                                                  agree)
            print(f"{name}: maxsim int8: {t['maxsim int8']} ms [{info}]", flush=True)
        if sweep:
            for v in SWEEP.get(name, []):
                ms, info = maxsim_bench(shape, {"MAXSIM_NV_VARIANT": v})
                sweeps.append((name, v, ms, gflop / ms if ms else None, info))
                print(f"{name}: sweep {v}: {ms} ms [{info}]", flush=True)

        def naive32():
            return torch.einsum("qid,njd->qnij", Q.float(), D.float()).amax(-1).sum(-1)

        def naive16():
            return torch.einsum("qid,njd->qnij", Q, D).amax(-1).float().sum(-1)

        naive = [] if "--no-naive" in args else [("torch fp32-acc", naive32), ("torch fp16", naive16)]
        for label, fn in naive + [(k, (lambda f: lambda: f(Q, D))(f)) for k, f in peers.items()]:
            try:
                t[label] = do_bench(fn, warmup=50, rep=300, return_mode="median")
            except Exception as e:  # noqa: BLE001 - e.g. out of memory for the naive grid
                print(f"{name}: {label}: {e}", file=sys.stderr)
                t[label] = None
            torch.cuda.empty_cache()
            print(f"{name}: {label}: {t[label]} ms", flush=True)
        rows.append((shape, gflop, floor, t))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True).stdout.strip()
    labels = sorted({k for *_, t in rows for k in t})
    lines = ["# Benchmarks (written by scripts/bench-gpu)", "",
             f"Device {props.name}, driver {driver}, commit {commit}, "
             f"{time.strftime('%Y-%m-%d')}. Median ms, float16 inputs. Ceilings measured in "
             f"this run: fp16 GEMM {gemm_tflops:.0f} TFLOP/s, copy {copy_tbs:.2f} TB/s.", "",
             "| shape (Nq, Nd, Lq, Ld, d) | GFLOP | floor | " + " | ".join(labels) +
             " | tensor-core TFLOP/s | x floor | vs best peer |",
             "|---" * (len(labels) + 6) + "|"]
    for (name, nq, nd, lq, ld, dim), gflop, floor, t in rows:
        cells = [f"{t[k]:.3f}" if t.get(k) else "-" for k in labels]
        ours = t.get("maxsim tensor-core")
        peer = [v for k, v in t.items() if v and not k.startswith("maxsim")]
        tf = f"{gflop / ours:.0f}" if ours else "-"
        xf = f"{ours / floor:.2f}" if ours else "-"
        vp = f"{min(peer) / ours:.2f}x" if ours and peer else "-"
        lines.append(f"| {name} ({nq}, {nd}, {lq}, {ld}, {dim}) | {gflop:.1f} | {floor:.3f} | " +
                     " | ".join(cells) + f" | {tf} | {xf} | {vp} |")
    if agree:
        lines += ["", "--precision int8 against exact on the same random data (`maxsim bench "
                  "--precision int8`): recall@10 of the exact top-10, Kendall tau over each "
                  "query's exact top-100:", "", "| shape | recall@10 | Kendall tau |",
                  "|---|---|---|"]
        lines += [f"| {n} | {r:.4f} | {k:.4f} |" for n, r, k in agree]
    if sweeps:
        lines += ["", "Tensor-core variants (MAXSIM_NV_VARIANT), same run:", "",
                  "| shape | variant | ms | TFLOP/s |", "|---|---|---|---|"]
        for name, v, ms, tf, info in sweeps:
            lines.append(f"| {name} | {v} | {ms:.4f} | {tf:.0f} |" if ms else f"| {name} | {v} | - | - |")
    text = "\n".join(lines) + "\n"
    os.makedirs("docs", exist_ok=True)
    with open("docs/benchmarks.md", "w") as f:
        f.write(text)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "benchmarks.md"), "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
